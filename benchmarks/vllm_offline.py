"""vLLM's offline path, `LLM.chat`, for bench_engines.py: runs under vLLM's Python (no skyt1 imports).

Reads {"model", "engine": {LLM keyword arguments}, "sampling": {...}, "messages": [[...], ...]} as JSON on stdin
and prints one line, RESULT and JSON (vLLM logs to stdout too): start-up seconds, generation seconds, completion tokens, requests.
"""

import json
import sys
import time


def main() -> None:
    cfg = json.load(sys.stdin)
    t0 = time.perf_counter()
    from vllm import LLM, SamplingParams

    llm = LLM(model=cfg["model"], **cfg["engine"])
    start_s = time.perf_counter() - t0
    sampling = SamplingParams(**cfg["sampling"])
    t1 = time.perf_counter()
    outputs = llm.chat(cfg["messages"], sampling, use_tqdm=False)
    generate_s = time.perf_counter() - t1
    print("RESULT " + json.dumps({"start_s": start_s, "generate_s": generate_s, "requests": len(outputs),
                      "tokens": sum(len(o.outputs[0].token_ids) for o in outputs)}))


if __name__ == "__main__":
    main()

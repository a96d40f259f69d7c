"""Every `sky jobs launch` command the README and the task headers show goes through SkyPilot's own CLI as
written (its option parsing, `--secret NAME` read from the environment, its task loading with the overrides)
and reaches the point where SkyPilot would contact its API server with every secret resolved by SkyPilot's
own launch-time step. Nothing is launched: the API call is replaced by a recorder."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import textwrap

from .conftest import REPO

RECORD = textwrap.dedent("""
    import json, shlex, sys
    from click.testing import CliRunner
    import sky
    from sky import execution
    from sky import jobs as managed_jobs
    from sky.client.cli import command

    class Reached(Exception):
        pass

    seen = {}

    def launch(dag, name=None, pool=None, num_jobs=None, **kw):
        execution._resolve_managed_secrets(dag)  # raises "No value available for secret(s)" if one is missing
        t = dag.tasks[0]
        seen.update(task=t.name, envs={k: t.envs[k] for k in ("BUCKET", "RUN_NAME")}, num_jobs=num_jobs,
                    secrets=sorted(t.secrets), refs=[r.name for r in t.managed_secret_refs])
        raise Reached()

    managed_jobs.launch = launch
    out = []
    for line in sys.argv[1:]:
        seen.clear()
        res = CliRunner().invoke(command.cli, shlex.split(line)[1:])
        out.append({"line": line, "reached": isinstance(res.exception, Reached), "seen": dict(seen),
                    "error": None if isinstance(res.exception, Reached) else f"{res.exception!r} {res.output[-800:]}"})
    print("RESULT " + json.dumps(out))
""")


def shown_commands() -> list[str]:
    """`sky jobs launch ...` lines of the README and of every task file's header."""
    lines = [ln.strip() for ln in (REPO / "README.md").read_text().splitlines() if ln.strip().startswith("sky jobs launch")]
    for task in sorted((REPO / "sky_tasks").glob("*.yaml")):
        lines += [ln.lstrip("# ").strip() for ln in task.read_text().splitlines() if ln.startswith("#   sky jobs launch")]
    return [re.sub(r"\s+#.*$", "", ln) for ln in lines]


def test_shown_sky_jobs_launch_commands_work_as_written(tmp_path):
    commands = shown_commands()
    assert len(commands) >= 10
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "SKY_RUNTIME_DIR": str(tmp_path),
           "OPENAI_API_KEY": "sk-test", "HF_TOKEN": "hf-test", "PYTHONPATH": str(REPO)}
    res = subprocess.run([sys.executable, "-c", RECORD, *commands], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=300)
    result = next((ln for ln in res.stdout.splitlines() if ln.startswith("RESULT ")), None)
    assert result, res.stdout[-2000:] + res.stderr[-3000:]
    for entry in json.loads(result[len("RESULT "):]):
        assert entry["reached"], (entry["line"], entry["error"])
        seen = entry["seen"]
        assert seen["refs"] == [] and seen["envs"]["BUCKET"] in ("my-bucket", "my-skyt1-bucket"), entry
        required = {k for k, v in _secrets(seen["task"]).items() if v is None}
        assert required <= set(seen["secrets"]), entry
        if "--num-jobs" in entry["line"]:
            assert seen["num_jobs"] == int(shlex.split(entry["line"])[shlex.split(entry["line"]).index("--num-jobs") + 1])


def _secrets(task_name: str) -> dict:
    import yaml

    doc = yaml.safe_load((REPO / "sky_tasks" / f"{task_name.removeprefix('skyt1-')}.yaml").read_text())
    return doc.get("secrets") or {}


def test_a_required_secret_left_out_is_refused_by_skypilot(tmp_path):
    line = "sky jobs launch sky_tasks/reformat.yaml --env BUCKET=my-bucket"
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "SKY_RUNTIME_DIR": str(tmp_path),
           "OPENAI_API_KEY": "sk-test", "PYTHONPATH": str(REPO)}
    res = subprocess.run([sys.executable, "-c", RECORD, line], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=300)
    (entry,) = json.loads(next(ln for ln in res.stdout.splitlines() if ln.startswith("RESULT "))[len("RESULT "):])
    assert not entry["reached"] and "No value available for secret(s): OPENAI_API_KEY" in entry["error"]

"""Two SkyPilot "nodes" on loopback: two real `skyt1 train` processes joined by torchrun (CPU, gloo)."""

from __future__ import annotations

import os
import subprocess

from .conftest import cli_args, hook_env


def test_two_nodes_from_skypilot_variables(tiny_model, make_run):
    run = make_run(rows=32)
    args = cli_args(run, tiny_model, max_steps=3, num_nodes=2)
    base = {"SKYPILOT_NODE_IPS": "127.0.0.1\n127.0.0.1\n", "SKYPILOT_NUM_NODES": "2",
            "SKYPILOT_NUM_GPUS_PER_NODE": "1", "SKYPILOT_TASK_ID": "sky-test-multinode", "MASTER_PORT": str(29500 + os.getpid() % 1000)}
    nodes = [subprocess.Popen(args, env=hook_env(**base, SKYPILOT_NODE_RANK=str(rank)), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for rank in (0, 1)]
    results = [node.communicate(timeout=600) for node in nodes]
    for node, (_, err) in zip(nodes, results, strict=True):
        assert node.returncode == 0, err[-3000:]

    manifest = run.phase("train").manifest()
    assert manifest["world_size"] == 2 and manifest["counts"]["steps"] == 3
    assert [s for s, _ in manifest["loss_curve"]] == [1, 2, 3]
    assert manifest["config"]["train_args"]["run_name"] == "sky-test-multinode"
    # Both nodes ran the same attempt; only the head recorded it and published the model.
    assert len(manifest["attempt_log"]) == 1
    assert len(list(run.local_path("train/logs").glob("node1-*.log"))) == 1
    assert (run.local_path("train/final") / "model.safetensors").is_file()
    # 2 nodes x batch 2 x accumulation 2 = 8 rows per step: tokens seen covers both ranks.
    assert manifest["counts"]["epochs"] == 3 * 8 / 32

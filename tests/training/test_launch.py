"""Process topology from SkyPilot's variables, the launch command, and the progress log follower."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from skyt1.training import launch


def test_topology_from_skypilot():
    env = {"SKYPILOT_NODE_IPS": "10.0.0.5\n10.0.0.6\n", "SKYPILOT_NUM_NODES": "2", "SKYPILOT_NODE_RANK": "1",
           "SKYPILOT_NUM_GPUS_PER_NODE": "8"}
    topo = launch.topology(env)
    assert topo == launch.Topology(nnodes=2, node_rank=1, nproc_per_node=8, master_addr="10.0.0.5", master_port=29500)
    assert topo.world_size == 16 and not topo.is_head
    assert launch.topology({**env, "MASTER_PORT": "12345"}).master_port == 12345
    with pytest.raises(ValueError, match="lists 2 addresses"):
        launch.topology({**env, "SKYPILOT_NUM_NODES": "3"})


def test_local_topology_on_this_machine():
    topo = launch.topology({})
    assert topo.nnodes == 1 and topo.node_rank == 0 and topo.is_head and topo.nproc_per_node >= 1


def test_commands():
    topo = launch.Topology(nnodes=2, node_rank=1, nproc_per_node=8, master_addr="10.0.0.5", master_port=29500)
    cmd = launch.command(Path("/r/cfg.yaml"), topo, distributed=True)
    assert cmd == [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--node_rank=1",
                   "--nproc_per_node=8", "--master_addr=10.0.0.5", "--master_port=29500",
                   "-m", "skyt1.training.launcher", "/r/cfg.yaml"]
    assert launch.command(Path("c.yaml"), launch.Topology(), distributed=False) == [
        sys.executable, "-m", "skyt1.training.launcher", "c.yaml"]
    env = launch.process_env(False, {"WORLD_SIZE": "4", "RANK": "1", "PATH": "/bin"})
    assert "WORLD_SIZE" not in env and "RANK" not in env and env["PATH"] == "/bin"


def test_log_follower_reads_only_whole_new_lines(tmp_path):
    path = tmp_path / "trainer_log.jsonl"
    path.write_text(json.dumps({"current_steps": 1}) + "\n")  # from an earlier attempt: not reported again
    seen = []
    follower = launch.LogFollower(path, seen.append)
    with path.open("a") as f:
        f.write(json.dumps({"current_steps": 2, "loss": 1.5}) + "\n" + '{"current_steps": 3, "lo')
    follower.poll()
    assert seen == [{"current_steps": 2, "loss": 1.5}]
    with path.open("a") as f:
        f.write('ss": 1.2}\nnot json\n')
    follower.poll()
    assert seen[-1] == {"current_steps": 3, "loss": 1.2} and len(seen) == 2


def test_launcher_rejects_bad_usage(monkeypatch):
    from skyt1.training import launcher

    monkeypatch.setattr(sys, "argv", ["launcher"])
    with pytest.raises(SystemExit, match="usage"):
        launcher.main()


def test_sigterm_reaches_the_trainer_and_its_exit_code_is_returned(tmp_path):
    """SkyPilot stops a job with SIGTERM: it must reach the training processes (their own process group)."""
    import os
    import signal
    import threading

    marker = tmp_path / "got-term"
    child = ("import signal, sys, time, pathlib\n"
             f"signal.signal(signal.SIGTERM, lambda *a: (pathlib.Path({str(marker)!r}).write_text('x'), sys.exit(7)))\n"
             "time.sleep(60)\n")
    threading.Timer(1.5, lambda: os.kill(os.getpid(), signal.SIGTERM)).start()
    code = launch.run_training([sys.executable, "-c", child], launch.process_env(False), log_path=tmp_path / "a.log",
                               trainer_log=tmp_path / "trainer_log.jsonl", on_entry=lambda e: None, poll_s=0.1)
    assert code == 7 and marker.exists()
    assert "=== " in (tmp_path / "a.log").read_text()


def test_trainer_dies_with_a_killed_skyt1(tmp_path):
    """If skyt1 itself is SIGKILLed, the trainer must not live on and race the next attempt."""
    import os
    import signal
    import subprocess
    import time

    pid_file = tmp_path / "trainer.pid"
    child = f"import os, time, pathlib; pathlib.Path({str(pid_file)!r}).write_text(str(os.getpid())); time.sleep(60)"
    parent = ("import sys; from pathlib import Path; from skyt1.training import launch\n"
              f"launch.run_training([sys.executable, '-c', {child!r}], launch.process_env(False), "
              f"log_path=Path({str(tmp_path / 'a.log')!r}), trainer_log=Path({str(tmp_path / 't.jsonl')!r}), "
              "on_entry=print)\n")
    proc = subprocess.Popen([sys.executable, "-c", parent])
    deadline = time.time() + 30
    while not pid_file.exists() and time.time() < deadline:
        time.sleep(0.05)
    trainer = int(pid_file.read_text())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    for _ in range(100):
        try:
            os.kill(trainer, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(trainer, signal.SIGKILL)
    raise AssertionError("the trainer outlived skyt1")

"""Training on several machines: two CPU workers on localhost, one `TF_CONFIG` each, run the
same `kws train` for one epoch of the tiny dataset; exactly one complete bundle comes out."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from kws.bundle import load_bundle

pytestmark = [pytest.mark.train, pytest.mark.slow]
TINY_CONFIG = Path(__file__).parent / "data" / "tiny.yaml"


def free_ports(count: int) -> list[int]:
    """Ports free now, below the range the kernel hands out itself (to ``bind(0)`` and to
    outgoing connections): between this check and the workers' own bind, only a process asking
    for that very port could take it, not the next connection anyone opens."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    found = []
    for port in random.Random().sample(range(10000, low), 200):
        with socket.socket() as s:
            try:
                s.bind(("", port))
            except OSError:
                continue
        found.append(port)
        if len(found) == count:
            return found
    raise AssertionError(f"no {count} free ports between 10000 and {low}")


def test_two_workers_write_exactly_one_bundle(tiny_dataset, tmp_path):
    out = tmp_path / "models" / "tiny"
    procs = []
    workers = [f"localhost:{port}" for port in free_ports(2)]
    for index in range(2):
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2",
               "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1",
               "TF_CONFIG": json.dumps({"cluster": {"worker": workers},
                                        "task": {"type": "worker", "index": index}})}
        log = open(tmp_path / f"worker{index}.log", "w")
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "kws", "train", "--config", str(TINY_CONFIG), "--data", str(tiny_dataset),
             "--epochs", "1", "--out", str(out), "--workdir", str(tmp_path / "work"),
             "--threads", "1"],  # --threads in a cluster: through TF_NUM_*_THREADS, no failure
            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT))
    try:
        codes = [p.wait(timeout=450) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    logs = [(tmp_path / f"worker{i}.log").read_text() for i in range(2)]
    assert codes == [0, 0], "\n\n".join(log[-3000:] for log in logs)
    # Both trained the same epoch in step; only worker 0 (the chief) wrote the bundle.
    assert all("epoch 1:" in log for log in logs)
    assert "not the chief" in logs[1] and "not the chief" not in logs[0]
    assert "bundle written to" in logs[0] and "bundle written to" not in logs[1]
    assert sorted(p.name for p in out.parent.iterdir()) == ["tiny"]
    bundle = load_bundle(out)
    names = {p.name for p in out.iterdir()}
    assert {"metadata.json", "frontend.npz", "model.tflite", "model.keras"} <= names
    assert bundle.metadata["training"]["epochs_run"] == 1
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["models", "work", "work.worker1"]

"""Two processes (torchrun, gloo on CPU) train one model: ranks agree, only rank 0 writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch.distributed as dist

from training_builders import phantom_folder

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not built in"),
]

SCRIPT = """
import hashlib, json, os, sys
import torch
sys.path.insert(0, {tests!r})
from training_builders import tiny_config
from cxrseg.training import run

torch.set_num_threads(1)
digests = []
real_evaluate = run.evaluate

def evaluate(model, *args, **kwargs):
    weights = torch.cat([p.detach().flatten() for p in model.parameters()])
    digests.append(hashlib.sha256(weights.numpy().tobytes()).hexdigest())
    return real_evaluate(model, *args, **kwargs)

run.evaluate = evaluate
result = run.train({data!r}, {out!r}, tiny_config(epochs=2, batch_size=2))
report = {{"rank": int(os.environ["RANK"]), "digests": digests, "history": result.history,
          "best_dice": result.best_dice}}
with open(os.path.join({reports!r}, f"rank{{report['rank']}}.json"), "w") as handle:
    json.dump(report, handle)
"""


def test_two_gloo_processes_agree_and_write_one_run_folder(tmp_path: Path) -> None:
    data = phantom_folder(tmp_path / "data", n=8)
    out, reports = tmp_path / "run", tmp_path / "reports"
    reports.mkdir()
    script = tmp_path / "ddp_train.py"
    tests = str(Path(__file__).parent)
    script.write_text(
        textwrap.dedent(SCRIPT).format(
            tests=tests, data=str(data), out=str(out), reports=str(reports)
        )  # fmt: skip
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": tests}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node", "2", str(script)]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    rank0, rank1 = (json.loads((reports / f"rank{r}.json").read_text()) for r in (0, 1))
    # One digest per validation; rank 0 also validates the best model to choose post-processing.
    assert len(rank1["digests"]) == 2 and rank0["digests"][:2] == rank1["digests"]
    timeless = [[{k: v for k, v in row.items() if not k.endswith("_s")} for row in r["history"]]
                for r in (rank0, rank1)]  # fmt: skip
    assert timeless[0] == timeless[1]  # losses and Dice are reduced over both ranks
    assert [row["epoch"] for row in rank0["history"]] == [1, 2]
    log = (out / "train.log").read_text()
    assert log.count(" start: ") == 1 and log.count('"epoch": 2') == 1
    assert sorted(p.name for p in out.iterdir()) == [
        "best", "config.yaml", "curves.png", "last", "metrics.csv", "splits.json", "train.log",
    ]  # fmt: skip

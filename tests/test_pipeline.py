"""`poke train all --preset tiny` end to end: killed (kill -9) mid-run twice, resumed, every artifact present."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.helpers.kill import stop_when
from tests.helpers.tiny_manifest import make_tiny_manifest

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

CONFIG = """
[data]
batch_size = 8
[classify]
epochs = 2
warmup_steps = 2
[pretrain]
epochs = 1
warmup_steps = 2
[gmm]
components = 2
[gan]
steps = 6
sample_every = 3
checkpoint_every = 2
metrics_every = 3
metrics_samples = 12
n_fixed = 4
"""


def _start(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, str(REPO / "cli.py"), *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def _rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.is_file() else []


def test_train_all_killed_twice_then_resumed(tmp_path, runner):
    from cli import app

    manifest = make_tiny_manifest(tmp_path, n_classes=4, per_class=12)
    cfg = tmp_path / "poke.toml"
    cfg.write_text(CONFIG)
    out = tmp_path / "runs" / "a"
    args = [
        "train",
        "all",
        "--manifest",
        str(manifest),
        "--out",
        str(out),
        "--preset",
        "tiny",
        "--config",
        str(cfg),
    ]

    # every config is validated before anything runs: a typo fails at once and creates nothing
    bad = tmp_path / "bad.toml"
    bad.write_text(CONFIG + "lr_gg = 1.0\n")
    res = runner.invoke(app, [*args[:-1], str(bad)])
    assert res.exit_code == 2 and "lr_gg" in res.output and "[gan]" in res.output
    assert not out.exists()
    res = runner.invoke(app, [*args, "--dry-run"])
    assert res.exit_code == 0 and "[gan]" in res.output and "steps = 6" in res.output

    # 1) kill -9 during step 1, as soon as its first checkpoint is on disk
    proc = _start(args)
    stop_when(proc, lambda: (out / "classifier" / "last.pt").is_file(), group=True, timeout_s=600)
    assert not (out / "gan" / "done.json").exists()
    res = runner.invoke(app, args)  # an existing run is refused without --resume
    assert res.exit_code == 2 and "--resume" in res.output

    # 2) resume in a new process, kill -9 again during the GAN step, after its first FCD evaluation
    proc = _start([*args, "--resume"])
    metrics = out / "gan" / "metrics.jsonl"  # written atomically: complete rows only
    stop_when(proc, lambda: metrics.is_file() and metrics.stat().st_size > 0, group=True, timeout_s=600)
    assert not (out / "gan" / "done.json").exists()

    # 3) resume to the end
    res = runner.invoke(app, [*args, "--resume"])
    assert res.exit_code == 0, res.output
    for step in ("classifier", "embeddings", "pretrain", "gmm", "gan"):
        assert (out / step / "done.json").is_file(), step
    assert json.loads((out / "classifier" / "done.json").read_text())["epochs"] == 2
    gan = json.loads((out / "gan" / "done.json").read_text())
    assert gan["steps"] == 6 and gan["nan_events"] == 0
    # step 0 is the step-2 generator (the candidate best.pt starts from), then every metrics_every
    assert [r["step"] for r in _rows(out / "gan" / "metrics.jsonl")] == [0, 3, 6]
    for rel in (
        "gan/samples.png",
        "gan/final.pt",
        "gan/best.pt",
        "gan/fixed_latents.pt",
        "gmm/gmm.pt",
        "gmm/pca.png",
        "report.md",
        "pipeline.json",
        "embeddings/embeddings.npy",
    ):
        assert (out / rel).is_file(), rel
    assert list((out / "pretrain" / "recon").glob("*.png"))
    report = (out / "report.md").read_text()
    assert "gan/samples.png" in report and "pretrain/recon/" in report and "fcd" in report
    # which step best.pt holds, in the report and on the console (rich wraps long lines)
    assert gan["kept"]["note"] in report and gan["kept"]["note"] in " ".join(res.output.split())
    times = json.loads((out / "pipeline.json").read_text())
    assert set(times["steps"]) == {"classify", "embed", "pretrain", "gmm", "gan"}
    assert "sample grid" in res.output and "report" in res.output

    # everything is done: a rerun skips every step
    res = runner.invoke(app, [*args, "--resume"])
    assert res.exit_code == 0 and res.output.count("skipped") == 5

    # sampling works from the run directory alone
    res = runner.invoke(app, ["sample", "--run", str(out), "--n", "4"])
    assert res.exit_code == 0, res.output
    assert (out / "samples" / "grid-seed0.png").is_file()

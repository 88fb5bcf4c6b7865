"""``poke demo`` end to end on a very small synthetic set: every artifact exists and the figures in its
summary agree with the ledger and the manifest; resume; a missing stage is reported, never faked."""

from __future__ import annotations

import csv
import json
import sqlite3
import sys
from pathlib import Path

import pytest

from pokedata.demo import STAGES, DemoConfig, StageMissing, _require, run_demo
from pokedata.demo_report import print_summary
from pokedata.errors import UserError
from pokedata.log import console
from pokedata.synth import SynthConfig

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow  # one end-to-end demo run (~1 min of CPU) shared by the module

# Even smaller than --quick: 4 classes, ~12 sprites each, and training cut to a few steps.
TINY_SYNTH = SynthConfig(
    n_classes=4, per_class=12, exact_copies=1, pixel_copies=1, near_dups=2, corrupt=2, too_small=1
)
TINY_TRAIN = {
    "data": {"batch_size": 16},
    "gan": {"steps": 2, "sample_every": 2, "checkpoint_every": 2, "metrics_every": 2, "metrics_samples": 16},
}


def _config(out: Path, **kw) -> DemoConfig:
    base = {"out": out, "quick": True, "progress": False, "synth": TINY_SYNTH, "train_overrides": TINY_TRAIN,
            "sample_n": 16}  # fmt: skip
    return DemoConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """The demo interrupted before training (the trainer "not installed"), then resumed to the end."""
    out = tmp_path_factory.mktemp("demo") / "out"
    with pytest.MonkeyPatch.context() as mp:  # module scope: no `monkeypatch` fixture; restored all the same
        mp.setitem(
            sys.modules, "pokegan.pipeline", None
        )  # what an installation without the trainer looks like
        first = run_demo(_config(out))
    first_json = json.loads((out / "demo.json").read_text())
    summary = run_demo(_config(out, resume=True))
    return out, summary, first, first_json


def _ledger(out: Path) -> sqlite3.Connection:
    return sqlite3.connect(out / "data" / "ledger.sqlite")


def test_every_stage_ran_and_every_artifact_exists(demo_run):
    out, summary, _first, _first_json = demo_run
    assert [s.name for s in summary.stages] == list(STAGES)
    assert summary.complete, [(s.name, s.status, s.note) for s in summary.stages]
    for name in (
        "sample grid",
        "reconstruction grid",
        "dedup contact sheet",
        "dedup report",
        "manifest",
        "report",
        "html report",
    ):
        assert name in summary.artifacts, f"{name} missing from {sorted(summary.artifacts)}"
        assert Path(summary.artifacts[name]).is_file()
    saved = json.loads((out / "demo.json").read_text())
    assert [s["status"] for s in saved["stages"]] == ["done"] * len(STAGES)
    report = (out / "report.md").read_text()
    for stage in STAGES:
        assert f"## {stage}: done" in report
    # the HTML report covers the run; the demo's last line is its path
    assert (out / "report" / "run.html").is_file() and summary.stage("report").figures["pages"] >= 4
    with console.capture() as captured:
        print_summary(summary)
    last = [line for line in captured.get().splitlines() if line.strip()][-1]
    assert last.startswith("open the report:") and str(out / "report" / "index.html") in last
    # nothing went to the repository's manifests/
    assert not (REPO / "manifests" / "demo").exists()
    assert (out / "manifests" / "demo" / "manifest.parquet").is_file()


def test_fetch_figures_match_the_ledger_and_the_sprite_folder(demo_run):
    out, summary, _first, _first_json = demo_run
    fetch = summary.stage("fetch").figures
    files_on_disk = [p for p in (out / "sprites").rglob("*") if p.is_file() and p.name != "synth.json"]
    with _ledger(out) as conn:
        rows = conn.execute("SELECT status, COUNT(*) FROM items GROUP BY status").fetchall()
    counts = dict(rows)
    assert fetch["files"] == len(files_on_disk) == sum(counts.values())
    assert fetch["stored"] == counts.get("done", 0)
    assert fetch["skipped"] == counts.get("skipped", 0) == TINY_SYNTH.exact_copies
    assert fetch["quarantined"] == counts.get("quarantined", 0) == TINY_SYNTH.corrupt
    assert fetch["stored"] + fetch["skipped"] + fetch["quarantined"] == fetch["files"]


def test_clean_dedup_and_manifest_figures_agree(demo_run):
    out, summary, _first, _first_json = demo_run
    clean = summary.stage("clean").figures
    manifest = summary.stage("manifest").figures
    with _ledger(out) as conn:
        images = conn.execute("SELECT COUNT(*) FROM images").fetchone()[0]
        quarantined = conn.execute("SELECT COUNT(*) FROM images WHERE status = 'quarantined'").fetchone()[0]
        kept = conn.execute(
            "SELECT COUNT(*) FROM images WHERE status = 'done' AND dup_of IS NULL AND conflict = 0"
        ).fetchone()[0]
        folded = conn.execute("SELECT COUNT(*) FROM images WHERE dup_of IS NOT NULL").fetchone()[0]
        conflicts = conn.execute("SELECT COUNT(*) FROM images WHERE conflict = 1").fetchone()[0]
    assert clean["images"] == images and clean["quarantined"] == quarantined
    assert clean["dedup"]["kept"] == kept
    assert clean["dedup"]["duplicates folded"] == folded
    assert clean["dedup"]["conflict images"] == conflicts >= 2
    with (out / "manifests" / "demo" / "manifest.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert manifest["rows"] == len(rows) == kept
    assert manifest["classes"] == TINY_SYNTH.n_classes
    assert sum(manifest["splits"].values()) == len(rows)


def test_every_planted_problem_was_found(demo_run):
    out, summary, _first, _first_json = demo_run
    findings = summary.findings
    assert len(findings) == 6
    for name, f in findings.items():
        assert f["found"] == f["planted"], f"{name}: missed {f['missed']}"
    assert findings["conflict pair flagged"]["planted"] == 1
    # the conflict pair: the same file under two classes, both images marked and left out of the manifest
    synth = json.loads((out / "sprites" / "synth.json").read_text())
    a, b = synth["conflict"]
    with _ledger(out) as conn:
        marks = conn.execute(
            "SELECT it.class_name, im.conflict FROM items it JOIN images im ON im.item_id = it.id "
            "WHERE it.source_id IN (?, ?)",
            (a, b),
        ).fetchall()
    assert len({c for c, _ in marks}) == 2 and all(conflict == 1 for _, conflict in marks)


def test_training_figures_are_reported(demo_run):
    _out, summary, _first, _first_json = demo_run
    train = summary.stage("train").figures
    text = json.dumps(train).lower()
    for word in ("accuracy", "loss", "fcd"):
        assert word in text, f"{word} missing from the train figures {train}"


def test_resume_reports_the_same_figures(demo_run):
    out, summary, _first, _first_json = demo_run
    again = run_demo(_config(out, resume=True))
    assert again.complete
    for name in ("fetch", "clean", "manifest"):
        assert again.stage(name).figures == summary.stage(name).figures, name
    assert again.findings == summary.findings


def test_existing_out_is_refused_without_resume(demo_run):
    out, _summary, _first, _first_json = demo_run
    with pytest.raises(UserError, match="--resume"):
        run_demo(_config(out))


def test_missing_stage_is_reported_not_faked(demo_run):
    """Without the trainer the data stages still run, and the demo says plainly what is missing."""
    _out, summary, first, first_json = demo_run
    assert not first.complete
    status = {s["name"]: (s["status"], s["note"]) for s in first_json["stages"]}
    assert all(status[name][0] == "done" for name in ("sprites", "fetch", "clean", "manifest"))
    assert status["train"] == ("missing", "pokegan.pipeline is not available in this installation")
    assert status["sample"] == ("blocked", "needs the train stage")
    assert status["report"][0] == "done"  # the report shows the data even without a run
    assert first.stage("report").figures["pages"] >= 4 and "html report" in first.artifacts
    assert "sample grid" not in first.artifacts
    # the resumed run continued the same dataset: same figures for the data stages
    for name in ("fetch", "clean", "manifest"):
        assert first.stage(name).figures == summary.stage(name).figures, name


def test_cli_refuses_an_existing_out(demo_run, runner):
    from cli import app

    out, _summary, _first, _first_json = demo_run
    result = runner.invoke(app, ["demo", "--out", str(out)])
    assert result.exit_code == 2
    assert "--resume" in result.output


def test_require_only_hides_the_stage_module_itself(tmp_path, monkeypatch):
    with pytest.raises(StageMissing):
        _require("pokedata.no_such_stage")
    # a stage module that exists but whose own dependency is missing is a real error, not "missing"
    (tmp_path / "h_demo_broken_stage.py").write_text("import no_such_dependency_for_the_demo_test\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="no_such_dependency_for_the_demo_test"):
        _require("h_demo_broken_stage")

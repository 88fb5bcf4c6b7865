"""`poke status`: counts by source, class and status, and the commonest errors."""

from __future__ import annotations

import json

import pytest

from cli import app
from pokedata.errors import UserError
from pokedata.ledger import Candidate, Ledger
from pokedata.status import dataset_status
from pokedata.store import DatasetDir


@pytest.fixture
def data(tmp_path):
    dataset = DatasetDir.at(tmp_path / "d").create()
    with Ledger(dataset.ledger_path) as ledger:
        ledger.plan([Candidate("ddg", f"u{i}", "Pikachu", f"http://x/{i}") for i in range(5)])
        ledger.plan([Candidate("danbooru", str(i), "Mew", None) for i in range(3)])
        ledger.plan([Candidate("folder", "a.png", "", None)])
        rows = {(r.source, r.source_id): r.id for r in ledger.select()}
        ledger.mark_done(rows["ddg", "u0"], path="raw/Pikachu/a.jpg", sha256="s", md5="m", nbytes=1000,
                         width=2, height=2)  # fmt: skip
        ledger.mark_done(rows["ddg", "u1"], path="raw/Pikachu/a.jpg", sha256="s", md5="m", nbytes=0,
                         width=2, height=2, status="skipped", error="duplicate-of:1")  # fmt: skip
        ledger.mark(rows["ddg", "u2"], "failed", "http-404: Not Found")
        ledger.mark(rows["ddg", "u3"], "failed", "http-404: Not Found")
        ledger.bump_attempts(rows["ddg", "u3"])
        ledger.bump_attempts(rows["ddg", "u3"])
        ledger.mark(rows["danbooru", "0"], "quarantined", "md5-mismatch: expected a, got b")
        ledger.mark(rows["danbooru", "1"], "skipped", "deleted")
    return tmp_path / "d"


def test_counts_by_source_class_status_and_errors(data):
    s = dataset_status(data)
    assert s["items"] == 9 and s["files"] == 1 and s["bytes"] == 1000
    assert s["by_status"] == {"planned": 3, "done": 1, "skipped": 2, "failed": 2, "quarantined": 1}
    assert s["by_source"]["ddg"] == {"total": 5, "done": 1, "skipped": 1, "failed": 2, "planned": 1}
    assert list(s["by_class"]) == ["Pikachu", "Mew", "(no class)"]  # largest first
    assert s["by_class"]["Mew"] == {"total": 3, "quarantined": 1, "skipped": 1, "planned": 1}
    assert s["errors"][0] == {"status": "failed", "reason": "http-404", "count": 2,
                              "example": "http-404: Not Found"}  # fmt: skip
    assert {e["reason"] for e in s["errors"]} == {"http-404", "duplicate-of", "md5-mismatch", "deleted"}
    assert s["attempts"]["rows_tried_more_than_once"] == 1
    assert dataset_status(data, top_errors=1)["errors"][0]["reason"] == "http-404"


def test_cli_json_and_tables(data, runner):
    out = runner.invoke(app, ["status", "--data", str(data), "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["by_status"]["failed"] == 2
    out = runner.invoke(app, ["status", "--data", str(data), "--classes", "1"])
    assert out.exit_code == 0, out.output
    text = out.output
    assert "by source" in text and "1 largest of 3" in text and "http-404" in text and "Mew" not in text


def test_missing_dataset_is_a_user_error(tmp_path, runner):
    with pytest.raises(UserError, match="not a dataset directory"):
        dataset_status(tmp_path)
    out = runner.invoke(app, ["status", "--data", str(tmp_path / "nope")])
    assert out.exit_code == 2 and "no ledger.sqlite" in out.output

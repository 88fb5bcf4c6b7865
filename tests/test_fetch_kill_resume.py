"""Kill -9 a fetch mid-run, rerun it: every file complete and verified, none duplicated, none fetched twice."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pokedata.ledger import Ledger
from pokedata.verify import verify_image_file
from tests.conftest import REPO
from tests.helpers.kill import count_rows, stop_when
from tests.servers.images import ImageServer, make_jpeg

N_IMAGES = 200

# The fetch run in a child process: plan the URL list (idempotent), then drain it.
CHILD = """
import json, sys
from pokedata.fetch.download import download_pending
from pokedata.fetch.http import HttpConfig, PoliteClient
from pokedata.ledger import Candidate, Ledger
from pokedata.store import DatasetDir

data, urls = sys.argv[1], json.load(open(sys.argv[2]))
dataset = DatasetDir.at(data).create()
with Ledger(dataset.ledger_path) as ledger:
    ledger.plan(Candidate("ddg", u, "Pikachu" if i % 2 else "Raichu", u, {}) for i, u in enumerate(urls))
    cfg = HttpConfig(retries=3, backoff_base=0.01, backoff_max=0.05, timeout=20, per_host_concurrency=4,
                     global_concurrency=4)
    with PoliteClient(cfg) as client:
        s = download_pending(ledger, dataset, client, source="ddg", progress=False)
print(json.dumps({"done": s.done, "failed": s.failed, "quarantined": s.quarantined}))
"""


def _rerun_clean(data, urls_file) -> None:
    """Rerun the fetch to completion; nothing may fail or be quarantined on the resume."""
    proc = _child(data, urls_file)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["failed"] == summary["quarantined"] == 0


def _child(data: Path, urls_file: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(data), str(urls_file)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


DONE = "SELECT count(*) FROM items WHERE status = 'done'"


@pytest.mark.slow
def test_kill_9_mid_fetch_then_resume(tmp_path):
    bodies = {f"/k/{i}.jpg": make_jpeg(1000 + i, size=32) for i in range(N_IMAGES)}
    with ImageServer() as srv:
        for path, body in bodies.items():
            # Slow, with a pause mid-body, so the kill lands among requests in flight and half-written temps.
            srv.add(path, body, delay=0.05, stall_after=200, stall=0.05)
        urls = [srv.url(p) for p in bodies]
        urls_file = tmp_path / "urls.json"
        urls_file.write_text(json.dumps(urls))
        data = tmp_path / "d"

        proc = _child(data, urls_file)
        # Kill once a few batches are recorded (rows are recorded in group commits, not one by one).
        stop_when(proc, lambda: sum(srv.hits.values()) >= 40 and count_rows(data, DONE) > 0)

        with Ledger(data / "ledger.sqlite") as ledger:
            done_before = {it.url for it in ledger.select(source="ddg", status="done")}
        assert 0 < len(done_before) < N_IMAGES
        hits_at_kill = dict(srv.hits)

        for route in srv.routes.values():  # the rerun need not be slow
            route.delay, route.stall = 0.0, 0.0
        _rerun_clean(data, urls_file)

    with Ledger(data / "ledger.sqlite") as ledger:
        items = ledger.select(source="ddg")
    assert len(items) == N_IMAGES and {it.status for it in items} == {"done"}
    # Every file complete and verified, byte for byte what the server sent; no duplicates, no leftovers.
    paths = {it.path for it in items}
    assert len(paths) == N_IMAGES
    for it in items:
        path = data / it.path
        served = bodies["/" + it.url.split("/", 3)[3]]
        assert (
            hashlib.sha256(path.read_bytes()).hexdigest() == it.sha256 == hashlib.sha256(served).hexdigest()
        )
        verify_image_file(path)
    assert sorted(p.relative_to(data).as_posix() for p in (data / "raw").rglob("*") if p.is_file()) == sorted(
        paths
    )
    assert not [p for p in (data / "tmp").iterdir()]
    # Nothing stored before the kill was fetched again; only requests in flight at the kill were repeated.
    for url in done_before:
        assert srv.hits["/" + url.split("/", 3)[3]] == 1
    repeated = [p for p, n in srv.hits.items() if n > 1]
    assert all(p in hits_at_kill for p in repeated) and len(repeated) <= 4
    assert all(n <= 2 for n in srv.hits.values())


# The same fetch, killed -9 by itself at the worst moment of a group commit: its second batch is renamed
# into raw/ and synced, and the process dies just before that batch's ledger transaction.
CHILD_KILLED_BEFORE_RECORD = (
    """
import os, signal, sys
import pokedata.fetch.download as download
from pokedata.ledger import Ledger

download.BATCH_SIZE, download.BATCH_WAIT = 8, 60.0  # batches of exactly 8
real = Ledger.mark_many
calls = []

def mark_many(self, updates):
    calls.append(1)
    if len(calls) == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(self, updates)

Ledger.mark_many = mark_many
"""
    + CHILD
)


@pytest.mark.slow
def test_kill_9_between_rename_and_ledger_commit_then_resume(tmp_path):
    n = 40
    bodies = {f"/g/{i}.jpg": make_jpeg(3000 + i, size=32) for i in range(n)}
    with ImageServer() as srv:
        for path, body in bodies.items():
            srv.add(path, body)
        urls_file = tmp_path / "urls.json"
        urls_file.write_text(json.dumps([srv.url(p) for p in bodies]))
        data = tmp_path / "d"

        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD_KILLED_BEFORE_RECORD, str(data), str(urls_file)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        proc.communicate(timeout=300)
        assert proc.returncode == -signal.SIGKILL

        with Ledger(data / "ledger.sqlite") as ledger:
            recorded = {it.path for it in ledger.select(source="ddg", status="done")}
        on_disk = {p.relative_to(data).as_posix() for p in (data / "raw").rglob("*") if p.is_file()}
        assert len(recorded) == 8  # the first batch only
        orphans = on_disk - recorded
        assert len(orphans) >= 8  # the second batch: renamed and synced, its rows still planned
        hits_at_kill = dict(srv.hits)

        _rerun_clean(data, urls_file)

    with Ledger(data / "ledger.sqlite") as ledger:
        items = ledger.select(source="ddg")
    assert len(items) == n and {it.status for it in items} == {"done"}
    paths = {it.path for it in items}
    assert len(paths) == n and paths >= orphans
    assert {p.relative_to(data).as_posix() for p in (data / "raw").rglob("*") if p.is_file()} == paths
    for it in items:
        served = bodies["/" + it.url.split("/", 3)[3]]
        assert (data / it.path).read_bytes() == served and hashlib.sha256(served).hexdigest() == it.sha256
        verify_image_file(data / it.path)
        if it.path in orphans:  # adopted through the intake gate, not downloaded again
            assert it.meta.get("adopted") is True and srv.hits["/" + it.url.split("/", 3)[3]] == 1
    # Only the requests in flight at the kill (at most the 4 workers) were repeated.
    repeated = [p for p, k in srv.hits.items() if k > 1]
    assert len(repeated) <= 4 and all(p in hits_at_kill for p in repeated)
    assert not [p for p in (data / "tmp").iterdir()]

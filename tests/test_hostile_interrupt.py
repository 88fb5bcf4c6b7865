"""Ctrl-C (SIGINT) of a running `poke` (issue 14), in subprocesses: the first stops scheduling, cuts the reads
in flight within seconds, records what is done, prints how to resume and exits 130; a second quits at once.
Every test checks that the signal really landed mid-run before it checks the resume."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pokedata.ledger import Ledger
from tests.helpers.kill import count_rows, stop_when
from tests.servers.hostile import HostileServer, body, drip, query_of, send
from tests.servers.images import make_jpeg

REPO = Path(__file__).resolve().parent.parent
N_GOOD = 6


def poke(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.Popen([sys.executable, str(REPO / "cli.py"), *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def danbooru_with_drips(srv: HostileServer) -> dict[int, bytes]:
    """N_GOOD quick posts, then two whose files drip (one byte every 0.2 s: minutes in all)."""
    imgs = {pid: make_jpeg(pid, size=32) for pid in range(100, 100 + N_GOOD + 2)}
    posts = []
    for pid in sorted(imgs, reverse=True):  # newest first, like Danbooru
        slow = pid < 102
        srv.route(f"/{pid}.jpg", drip(imgs[pid], every=0.2) if slow else body(imgs[pid]))
        posts.append({"id": pid, "md5": hashlib.md5(imgs[pid]).hexdigest(), "file_ext": "jpg",
                      "file_url": srv.url(f"/{pid}.jpg"), "tag_string": "pikachu", "rating": "g"})  # fmt: skip

    def listing(h) -> None:
        page = (query_of(h).get("page") or [None])[0]
        send(h, 200, json.dumps(posts if page is None else []).encode(), "application/json")

    srv.route("/posts.json", listing)
    return imgs


SECRET = "interrupt-secret-key-0123456789"


def fetch_args(srv: HostileServer, data: Path) -> list[str]:
    return ["fetch", "danbooru", "--tags", "pikachu", "--class", "Pikachu", "--base-url", srv.origin,
            "--api-rate", "1000", "--file-rate", "1000", "--login", "alice", "--api-key", SECRET,
            "--data", str(data)]  # fmt: skip


@pytest.mark.slow
def test_ctrl_c_stops_a_fetch_with_reads_in_flight_then_it_resumes(tmp_path):
    data = tmp_path / "d"
    with HostileServer() as srv:
        imgs = danbooru_with_drips(srv)
        proc = poke(*fetch_args(srv, data))
        # Both per-host slots held by dripping bodies, some quick files recorded: now Ctrl-C (still dripping:
        # the signal lands on a live run).
        stopped = stop_when(proc, lambda: srv.hits["/100.jpg"] and srv.hits["/101.jpg"]
                            and count_rows(data, "SELECT count(*) FROM items WHERE status='done'") >= 1,
                            sig=signal.SIGINT, settle_s=0.5, timeout_s=60, exit_timeout_s=30)  # fmt: skip
        assert stopped.seconds < 15  # the drips would take minutes: the reads in flight were cut
        text = stopped.out + stopped.err
        assert "Traceback" not in text and SECRET not in text
        assert "Resume with: poke fetch danbooru --tags pikachu" in " ".join(text.split())
        assert "--api-key $DANBOORU_API_KEY" in " ".join(text.split())  # the key is never printed
        with Ledger(data / "ledger.sqlite") as ledger:
            rows = {int(r.source_id): r for r in ledger.select(source="danbooru")}
        done_before = {p for p in rows if rows[p].status == "done"}
        assert done_before and len(rows) == N_GOOD + 2
        assert rows[100].status == rows[101].status == "planned"  # abandoned, not failed
        assert all(r.status == "planned" and r.attempts == 0 for p, r in rows.items() if p not in done_before)
        for p in done_before:  # recorded rows point at complete, verified files
            assert (data / rows[p].path).read_bytes() == imgs[p]
        assert not list((data / "tmp").iterdir())

        # Resume (the files are quick now): only the two abandoned files are fetched again.
        for pid in (100, 101):
            srv.route(f"/{pid}.jpg", body(imgs[pid]))
        hits_before = dict(srv.hits)
        again = poke(*fetch_args(srv, data))
        out, err = again.communicate(timeout=120)
        assert again.returncode == 0, err
        for pid in done_before:  # nothing recorded before the Ctrl-C was fetched again
            assert srv.hits[f"/{pid}.jpg"] == hits_before[f"/{pid}.jpg"] == 1
    assert_every_post_stored_intact(data, imgs)


def assert_every_post_stored_intact(data, imgs):
    """Every post is `done` exactly once, and its stored file is byte-exact."""
    with Ledger(data / "ledger.sqlite") as ledger:
        items = ledger.select(source="danbooru")
    assert {it.status for it in items} == {"done"} and len(items) == N_GOOD + 2
    for it in items:
        assert (data / it.path).read_bytes() == imgs[int(it.source_id)]


@pytest.mark.slow
def test_second_ctrl_c_quits_at_once_and_nothing_is_lost(tmp_path):
    data = tmp_path / "d"
    with HostileServer() as srv:
        imgs = danbooru_with_drips(srv)
        proc = poke(*fetch_args(srv, data))
        stopped = stop_when(proc, lambda: srv.hits["/100.jpg"] and srv.hits["/101.jpg"], sig=signal.SIGINT,
                            times=2, timeout_s=60, exit_timeout_s=30)  # fmt: skip
        assert "Traceback" not in stopped.out + stopped.err
        for pid in (100, 101):
            srv.route(f"/{pid}.jpg", body(imgs[pid]))
        again = poke(*fetch_args(srv, data))
        _, err = again.communicate(timeout=120)
        assert again.returncode == 0, err
    assert_every_post_stored_intact(data, imgs)


@pytest.mark.slow
def test_ctrl_c_stops_training_keeps_its_checkpoint_and_says_how_to_resume(tmp_path):
    """`poke train classify` (tiny, CPU) interrupted after its first checkpoint: exit 130, last.pt intact,
    the printed command (with --resume) continues from it."""
    import torch

    from tests.helpers.tiny_manifest import make_tiny_manifest

    manifest = make_tiny_manifest(tmp_path, n_classes=2, per_class=8, size=16)
    run = tmp_path / "run"
    args = ["train", "classify", "--manifest", str(manifest), "--out", str(run), "--epochs", "500",
            "--image-size", "16", "--batch-size", "4", "--num-workers", "0", "--device", "cpu"]  # fmt: skip
    proc = poke(*args)
    last = run / "classifier" / "last.pt"
    # 500 epochs: the signal lands mid-training
    stopped = stop_when(proc, lambda: last.is_file() and last.stat().st_size > 0, sig=signal.SIGINT,
                        settle_s=0.5, timeout_s=180)  # fmt: skip
    text = " ".join((stopped.out + stopped.err).split())
    assert "Traceback" not in text
    assert "Resume with: poke train classify" in text and text.rstrip().endswith("--resume")
    step = torch.load(last, map_location="cpu", weights_only=False)["step"]
    assert step > 0
    # the printed command continues from the checkpoint (stopped again after 2 more steps here)
    again = poke(*args, "--resume", "--stop-after-steps", "2")
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    assert f"resumed from step {step}" in " ".join((out + err).split())

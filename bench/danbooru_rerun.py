"""Danbooru reruns: requests and posts answered, ours vs walking every page again, in one run.

Against the local fake Danbooru (tests/servers/danbooru.py) on 127.0.0.1: a query with N posts is
listed to its end, then K new posts appear and the fetch is rerun, then rerun once more with nothing
new. Each rerun is counted (``/posts.json`` requests, post ids answered, how many were new) for ours and
for the anchor: the same rerun with the query's cursor dropped, i.e. walking every page again (what a
lister without a cursor does). Few posts carry the client-side tag, so little is downloaded.

    python bench/danbooru_rerun.py            # N = 20,000, K = 250
    python bench/danbooru_rerun.py --quick    # N = 2,000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests"))


def _add(srv, lo: int, hi: int) -> None:
    for pid in range(lo, hi):
        srv.add_post(pid, character=["pikachu"], general=["solo"] + (["smile"] if pid % 500 == 0 else []))


def _rerun(srv, cfg, *, drop_cursor: bool, floor: int) -> tuple[int, int, int, float]:
    from pokedata.fetch.danbooru_run import fetch_danbooru
    from pokedata.ledger import Ledger

    if drop_cursor:
        with Ledger(cfg.data / "ledger.sqlite") as ledger, ledger.transaction() as conn:
            conn.execute("DELETE FROM meta WHERE key LIKE 'danbooru.cursor:%'")
    n, seen = len(srv.api_requests()), len(srv.answered)
    t = time.perf_counter()
    fetch_danbooru(cfg)
    sec = time.perf_counter() - t
    ids = [i for page in srv.answered[seen:] for i in page]
    return len(srv.api_requests()) - n, len(ids), sum(i > floor for i in ids), sec


def main(argv: list[str] | None = None) -> int:
    from servers.danbooru import FakeDanbooru

    from pokedata.fetch.danbooru import DanbooruConfig
    from pokedata.fetch.danbooru_run import fetch_danbooru
    from pokedata.fetch.http import HttpConfig

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    n, k = (2_000, 250) if args.quick else (20_000, 250)
    print(
        "| rerun | ours: requests, posts answered (new) | every page again: requests, posts answered (new) |"
    )
    print("|---|---|---|")
    with FakeDanbooru() as srv, tempfile.TemporaryDirectory() as tmp:
        http = HttpConfig(retries=3, backoff_base=0.01, backoff_max=0.05, timeout=10)
        _add(srv, 1, n + 1)
        for side in ("ours", "anchor"):
            data = Path(tmp) / side
            cfg = DanbooruConfig(data=data, base_url=srv.base_url, http=http, progress=False, api_rate=1000,
                                 file_rate=1000, tags=("pikachu", "solo", "smile"))  # fmt: skip
            fetch_danbooru(cfg)  # the first walk, to its end
        _add(srv, n + 1, n + k + 1)  # both datasets see the same new posts; each rerun is run in turn
        for label, floor in ((f"{k} new posts", n), ("nothing new", n + k)):
            row = []
            for side in ("ours", "anchor"):
                cfg = DanbooruConfig(data=Path(tmp) / side, base_url=srv.base_url, http=http, progress=False,
                                     api_rate=1000, file_rate=1000, tags=("pikachu", "solo", "smile"))  # fmt: skip
                req, answered, new, sec = _rerun(srv, cfg, drop_cursor=side == "anchor", floor=floor)
                row.append(f"{req:,} requests, {answered:,} posts ({new:,} new), {sec:.2f} s")
            print(f"| {label} (query of {n:,} posts) | {row[0]} | {row[1]} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

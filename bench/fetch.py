"""Benchmark: our downloader vs img2dataset on the same loopback URL list, in one run.

    python bench/fetch.py            # 5,000 images of ~50 KB
    python bench/fetch.py --quick    # 1,000 images

What it does:
1. generates N distinct JPEGs of ~50 KB once into ``bench/out/fetch/images/`` (reused by later runs);
2. serves them from a separate process on 127.0.0.1 (``tests/servers/images.py``, threaded, HTTP/1.1);
3. runs, each in its own fresh process and output folder, with the same thread count and no rate limits:
   - ours: plan the URLs into a ledger, then ``download_pending`` (Content-Type + magic bytes, size cap,
     sha256/md5 while streaming, Pillow full decode, sha256 dedup, atomic rename; group commit: one sync
     of each batch's files, then its ledger rows in one transaction);
   - img2dataset, installed into ``bench/.venv-img2dataset`` by this script (``output_format=files``,
     ``resize_mode=no``, one process, ``--thread_count`` threads);
4. prints images/s of each (wall time of the whole process, imports included) and the ratio.

If img2dataset cannot be installed (no PyPI access, build failure), that is said plainly and our figures
are still printed. Figures and the machine go in bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out" / "fetch"
VENV = ROOT / "bench" / ".venv-img2dataset"


def make_images(n: int, folder: Path) -> list[Path]:
    """N distinct ~50 KB JPEGs (smooth colour fields plus noise), generated once."""
    import io

    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{i:05d}.jpg" for i in range(n)]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        print(f"generating {len(missing)} JPEGs into {folder} ...", flush=True)
    for p in missing:
        rng = np.random.default_rng(int(p.stem))
        small = Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).resize((320, 320))
        noisy = np.asarray(small).astype(np.int16) + rng.integers(-20, 20, (320, 320, 3))
        buf = io.BytesIO()
        Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=90)
        tmp = p.with_suffix(".tmp")
        tmp.write_bytes(buf.getvalue())
        os.replace(tmp, p)
    return paths


def serve(folder: Path, port_file: Path) -> None:
    """Child process: serve every file of ``folder`` at ``/img/<name>`` until killed."""
    sys.path.insert(0, str(ROOT / "tests"))
    from servers.images import ImageServer

    srv = ImageServer().start()
    for p in sorted(folder.glob("*.jpg")):
        srv.add(f"/img/{p.name}", p.read_bytes())
    port_file.write_text(str(srv.port))
    while True:
        time.sleep(3600)


def run_ours(urls_file: Path, data: Path, threads: int) -> None:
    """Child process: plan + download with our downloader; prints a JSON line of counts."""
    sys.path.insert(0, str(ROOT))
    from pokedata.fetch.download import download_pending
    from pokedata.fetch.http import HttpConfig, PoliteClient
    from pokedata.ledger import Candidate, Ledger
    from pokedata.store import DatasetDir

    urls = urls_file.read_text().split()
    dataset = DatasetDir.at(data).create()
    started = time.monotonic()
    with Ledger(dataset.ledger_path) as ledger:
        ledger.plan(Candidate("bench", u, "bench", u, {}) for u in urls)
        cfg = HttpConfig(global_concurrency=threads, per_host_concurrency=threads, timeout=30)
        with PoliteClient(cfg) as client:
            s = download_pending(ledger, dataset, client, source="bench", progress=False)
    print(json.dumps({"done": s.done, "failed": s.failed, "quarantined": s.quarantined,
                      "inner_seconds": time.monotonic() - started}))  # fmt: skip


def ensure_img2dataset() -> tuple[Path | None, str]:
    """(path of the img2dataset CLI, note). Creates the throwaway venv on first use."""
    exe = VENV / "bin" / "img2dataset"
    if exe.is_file():
        return exe, "already installed"
    print(f"installing img2dataset into {VENV} (once) ...", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(VENV)], check=True)
        res = subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", "img2dataset"],
                             capture_output=True, text=True, timeout=1800)  # fmt: skip
    except (subprocess.SubprocessError, OSError) as exc:
        return None, f"could not create the venv: {exc}"
    if res.returncode != 0 or not exe.is_file():
        return None, "pip install img2dataset failed: " + (res.stderr.strip().splitlines() or ["?"])[-1]
    return exe, "installed now"


def run_img2dataset(exe: Path, urls_file: Path, out: Path, threads: int) -> dict:
    cmd = [
        str(exe), "--url_list", str(urls_file), "--input_format", "txt", "--output_folder", str(out),
        "--output_format", "files", "--resize_mode", "no", "--processes_count", "1",
        "--thread_count", str(threads), "--timeout", "30", "--retries", "0", "--enable_wandb", "False",
        "--disable_all_reencoding", "True", "--number_sample_per_shard", "100000", "--distributor",
        "multiprocessing",
    ]  # fmt: skip
    started = time.monotonic()
    res = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.monotonic() - started
    ok = sum(1 for p in out.rglob("*.jpg"))
    stats = [json.loads(p.read_text()) for p in out.glob("*_stats.json")]
    failed = sum(s.get("failed_to_download", 0) + s.get("failed_to_resize", 0) for s in stats)
    return {
        "ok": ok,
        "failed": failed,
        "seconds": seconds,
        "inner_seconds": sum(s.get("duration", 0.0) for s in stats),  # its own timing of the shards
        "rc": res.returncode,
        "stderr": res.stderr[-2000:],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1,000 images instead of 5,000")
    ap.add_argument("-n", type=int, default=None, help="number of images (overrides --quick)")
    ap.add_argument("--threads", type=int, default=16, help="download threads for both tools")
    ap.add_argument("--skip-img2dataset", action="store_true", help="only run ours")
    ap.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--port-file", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--ours", nargs=2, type=Path, metavar=("URLS", "DATA"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        return serve(args.serve, args.port_file)
    if args.ours:
        return run_ours(args.ours[0], args.ours[1], args.threads)

    import shutil

    n = args.n or (1000 if args.quick else 5000)
    paths = make_images(n, OUT / "images")
    mean_kb = sum(p.stat().st_size for p in paths) / n / 1024
    port_file = OUT / "port"
    port_file.unlink(missing_ok=True)
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(OUT / "images"), "--port-file",
                               str(port_file)])  # fmt: skip
    try:
        while not port_file.is_file():
            if server.poll() is not None:
                sys.exit("the image server did not start")
            time.sleep(0.1)
        port = int(port_file.read_text())
        urls_file = OUT / f"urls-{n}.txt"
        urls_file.write_text("\n".join(f"http://127.0.0.1:{port}/img/{p.name}" for p in paths) + "\n")
        print(f"{n} images, mean {mean_kb:.1f} KB, {args.threads} threads, loopback server pid {server.pid}")
        print(f"machine: {platform.platform()}, Python {platform.python_version()}, {os.cpu_count()} CPUs")

        data = OUT / "ours"
        shutil.rmtree(data, ignore_errors=True)
        started = time.monotonic()
        res = subprocess.run([sys.executable, __file__, "--ours", str(urls_file), str(data), "--threads",
                              str(args.threads)], capture_output=True, text=True)  # fmt: skip
        ours_s = time.monotonic() - started
        if res.returncode != 0:
            sys.exit(f"our downloader failed:\n{res.stderr[-3000:]}")
        ours = json.loads(res.stdout.strip().splitlines()[-1])

        theirs, note = None, "skipped (--skip-img2dataset)"
        if not args.skip_img2dataset:
            exe, note = ensure_img2dataset()
            if exe is not None:
                out = OUT / "img2dataset"
                shutil.rmtree(out, ignore_errors=True)
                theirs = run_img2dataset(exe, urls_file, out, args.threads)
                if theirs["rc"] != 0:
                    print(f"img2dataset exited with {theirs['rc']}:\n{theirs['stderr']}")
    finally:
        server.terminate()
        server.wait()

    print()
    print(f"{'tool':<34}{'ok':>7}{'failed':>8}{'seconds':>9}{'images/s':>10}")
    print(f"{'poke download_pending (verified)':<34}{ours['done']:>7}{ours['failed'] + ours['quarantined']:>8}"
          f"{ours_s:>9.1f}{ours['done'] / ours_s:>10.0f}")  # fmt: skip
    if theirs is None:
        print(f"img2dataset: NOT RUN ({note}); only our figures are printed")
        return
    print(f"{'img2dataset (files, resize no)':<34}{theirs['ok']:>7}{theirs['failed']:>8}"
          f"{theirs['seconds']:>9.1f}{theirs['ok'] / theirs['seconds']:>10.0f}")  # fmt: skip
    if not theirs["ok"]:
        print("img2dataset stored nothing: no ratio")
        return
    ratio = (ours["done"] / ours_s) / (theirs["ok"] / theirs["seconds"])
    print(f"ratio ours / img2dataset, whole process (start-up included): {ratio:.2f}x (goal >= 1.0x)")
    # Steady state: our plan + download time vs img2dataset's own shard timing (its start-up excluded).
    ours_rate = ours["done"] / ours["inner_seconds"]
    theirs_rate = theirs["ok"] / max(theirs["inner_seconds"], 1e-9)
    print(f"steady state: ours {ours_rate:.0f} images/s ({ours['inner_seconds']:.1f}s), img2dataset "
          f"{theirs_rate:.0f} images/s ({theirs['inner_seconds']:.1f}s, its shard timing): "
          f"{ours_rate / theirs_rate:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()

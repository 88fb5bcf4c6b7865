"""Wall-clock of ``poke demo`` per stage, against the issue's budget: the whole pipeline in 5 minutes
on 2 CPU cores.

    python bench/demo.py            # the full demo (12 classes, ~300 files, training for pictures)
    python bench/demo.py --quick    # the --quick setting (6 classes, a few training steps)

Prints each stage's seconds and the total as a ratio of the 300 s budget (below 1.0x is within it), with
the machine it ran on. Everything is written to a temporary folder (or --out) and nothing is downloaded.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

BUDGET_S = 300.0


def machine() -> str:
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{platform.processor() or platform.machine()}, {cores} usable cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), {gpu}, Python {platform.python_version()}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the --quick demo setting")
    parser.add_argument(
        "--out", type=Path, default=None, help="keep the demo's output here (default: a temp dir)"
    )
    parser.add_argument("--seed", type=int, default=0, help="demo seed")
    args = parser.parse_args(argv)

    from pokedata.demo import DemoConfig, run_demo

    with tempfile.TemporaryDirectory(prefix="poke-bench-demo-") as tmp:
        out = args.out or Path(tmp) / "demo"
        summary = run_demo(DemoConfig(out=out, quick=args.quick, seed=args.seed, progress=False))
    print()
    print(f"machine: {machine()}")
    print(f"setting: {'--quick' if args.quick else 'full'}, seed {args.seed}")
    print(f"{'stage':<10} {'status':<8} {'seconds':>8} {'of budget':>10}")
    for s in summary.stages:
        print(f"{s.name:<10} {s.status:<8} {s.seconds:>8.1f} {s.seconds / BUDGET_S:>9.1%}")
    total = summary.seconds
    print(f"{'total':<10} {'':<8} {total:>8.1f} {total / BUDGET_S:>9.1%}")
    print(
        f"ours {total:.0f} s vs budget {BUDGET_S:.0f} s (5 min on 2 CPU cores): {total / BUDGET_S:.2f}x of the budget"
    )
    return 0 if summary.complete else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Step 1's val figures vs the manifest's row order, on 8 real species (docs/training.md, "Step 1").

Builds a manifest from ``../shared/data/sprites-gen1`` (dex 1, 4, 7, 25, 39, 52, 54, 63; every frame;
no dedup; 20 % val), copies it with the rows shuffled (same splits, same ``stats.json``), and trains step 1
with ``--preset tiny`` on both. The figures must not depend on the order. To measure an older version of
the code (the "before" row of the table), point ``--code`` at a checkout of it::

    python bench/row_order.py                                  # this checkout
    git worktree add /tmp/before f82d831 && python bench/row_order.py --code /tmp/before

Takes a few minutes on 2 CPU cores (two tiny step-1 runs).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SPECIES = (1, 4, 7, 25, 39, 52, 54, 63)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--code", type=Path, default=HERE.parent, help="the checkout whose step 1 is measured")
    ap.add_argument("--shared", type=Path, default=HERE.parent.parent / "shared" / "data")
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp dir)")
    args = ap.parse_args()
    if not (args.shared / "sprites-gen1").is_dir():
        sys.exit(f"{args.shared}/sprites-gen1 not found: pass --shared DIR (the shared data folder)")
    code = args.code.resolve()
    sys.path.insert(0, str(HERE.parent))
    sys.path.insert(0, str(code))  # the measured code (and its tests' sprite helpers) first

    import pandas as pd

    from pokedata.clean import CleanConfig, run_clean
    from pokedata.manifest import ManifestConfig, build_manifest
    from pokegan.config import ClassifyConfig, load_step_config
    from pokegan.steps.classify import new_run, run_classify
    from tests.test_sprites_e2e import gen1_catalog, import_sprites

    work = args.work or Path(tempfile.mkdtemp(prefix="poke-row-order-"))
    catalog, names = gen1_catalog(args.shared, work / "gen1.csv")
    data = work / "data8"
    import_sprites(args.shared, work, names, SPECIES, data)
    run_clean(CleanConfig(data=data, min_side=16, frames="all", workers=2, progress=False))
    build_manifest(ManifestConfig(data=data, catalog=catalog, name="eight", out=work / "manifests", val=0.2))
    written = work / "manifests" / "eight"
    shuffled = work / "manifests" / "eight-shuffled"
    shutil.copytree(written, shuffled)
    df = pd.read_parquet(shuffled / "manifest.parquet").sample(frac=1.0, random_state=1)
    df.reset_index(drop=True).to_parquet(shuffled / "manifest.parquet", index=False)
    df.to_csv(shuffled / "manifest.csv", index=False)

    print(f"code: {code}")
    print("| manifest | val top-1 | val top-5 |\n|---|---|---|")
    for manifest in (written, shuffled):
        cfg = load_step_config(ClassifyConfig, "classify", preset="tiny")
        summary = run_classify(cfg, new_run(cfg, manifest, work / f"run-{manifest.name}"))
        print(f"| {manifest.name} | {summary['val_top1']:.3f} | {summary['val_top5']:.3f} |", flush=True)


if __name__ == "__main__":
    main()

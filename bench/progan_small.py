"""The evidence of ``poke train progan --preset small`` (docs/progan.md), from a finished run directory.

Writes into ``--out``: ``progan-small-curves.png`` (the critic's and the generator's losses, D(real) and
D(fake) over the steps, with the stage boundary and the fade-in marked; from the run's TensorBoard
scalars) and copies the run's stage grids and gradient-flow plots as ``progan-small-<name>.png``; prints
the judge's figures of every stage checkpoint (``poke eval --step progan``) as a markdown table, beside
each stage's generator upsampled (nearest) to the next size and judged there (what the next stage starts
from with skip outputs), and the same figures for real train images against the same val reference (the
floor no generator can beat). For a class-conditional run (``[progan] conditional``) also
``PREFIX-classes.png``: for the first 32 fixed labels, a real train frame of the class (upper row of each
pair) above what the final EMA generator draws for that label (lower row), at the last stage's size.

    poke train progan --manifest manifests/sprites --out runs/sprites-progan --preset small
    python bench/progan_small.py --run runs/sprites-progan --out docs/img --samples 1000
    poke eval --run runs/x --step progan --n-samples 500     # then, reading its eval.json, named apart:
    python bench/progan_small.py --run runs/x --out docs/img --prefix progan-small-x --reuse-eval --samples 500
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def scalars(tb_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(tb_dir), size_guidance={"scalars": 0})
    ea.Reload()
    return {tag: [(e.step, e.value) for e in ea.Scalars(tag)] for tag in ea.Tags()["scalars"]}


def plot_curves(tb: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    anchored = "progan/g_anchor_l1" in tb  # a run with the class anchor: its L1 gets a third panel
    fig, axes = plt.subplots(1, 3 if anchored else 2, figsize=(18 if anchored else 12, 4))
    if anchored:
        xs, ys = zip(*tb["progan/g_anchor_l1"], strict=True)
        axes[2].plot(xs, ys, label="g_anchor_l1", lw=1, color="tab:green")
        axes[2].set_title("the class anchor: L1 of each fake to a real frame of its label")
    for tag, ax in (("progan/d_loss", axes[0]), ("progan/g_loss", axes[0])):
        if tag in tb:
            xs, ys = zip(*tb[tag], strict=True)
            ax.plot(xs, ys, label=tag.split("/")[1], lw=1)
    for tag in ("progan/d_real", "progan/d_fake"):
        if tag in tb:
            xs, ys = zip(*tb[tag], strict=True)
            axes[1].plot(xs, ys, label=tag.split("/")[1].replace("_", "(") + ")", lw=1)
    res = dict(tb.get("progan/resolution", []))
    grow = next((s for s, r in sorted(res.items()) if r > min(res.values())), None) if res else None
    alpha = [(s, a) for s, a in tb.get("progan/alpha", []) if grow is not None and s >= grow]
    for ax in axes:
        if grow is not None:
            ax.axvline(
                grow, color="k", ls="--", lw=0.8, label=f"{int(max(res.values()))} px from here (first log)"
            )
            full = next((s for s, a in alpha if a >= 1.0), None)
            if full is not None and full > grow:  # none with skip outputs (alpha is 1 throughout)
                ax.axvspan(grow, full, color="grey", alpha=0.15, label="fade-in")
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_title("losses (non-saturating BCE)")
    axes[1].set_title("critic's mean sigmoid output (batch of real / fake)")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def _judge_at(run_dir: Path, size: int, n: int):
    """The run's judge and its val reference features at ``size`` (as ``poke eval --step progan``)."""
    from pokegan.data import load_manifest
    from pokegan.judge import load_or_train_judge, reference_features
    from pokegan.runs import RunDir

    run = RunDir(run_dir)
    manifest = load_manifest(run.manifest_dir, data_root=run.data_root)
    judge = load_or_train_judge(manifest)
    return judge, reference_features(judge, manifest, image_size=size, n=n, seed=0)


def real_floor(run_dir: Path, size: int, n: int) -> dict[str, float]:
    """The judge's figures of real *train* images against the val reference: what a perfect G would get."""
    from pokegan.data import load_manifest
    from pokegan.judge import score
    from pokegan.metrics import reference_loader
    from pokegan.runs import RunDir

    run = RunDir(run_dir)
    judge, ref = _judge_at(run_dir, size, n)
    train = reference_loader(
        load_manifest(run.manifest_dir, data_root=run.data_root), size, n, 0, 64, split="train"
    )
    return score(judge, ref, (b[0] if isinstance(b, (list, tuple)) else b for b in train), seed=0)


def upsampled_stage(run_dir: Path, stage_pt: Path, size: int, n: int) -> dict[str, float]:
    """A stage's generator with its samples upsampled (nearest) to ``size``, judged at ``size``: what a
    skip-output growth starts from (its first step draws exactly this), so the next stage's baseline."""
    import torch.nn.functional as F

    from pokegan.evaluate import generator_figures
    from pokegan.progan.evaluate import progan_sampler
    from pokegan.progan.state import load_generator

    judge, ref = _judge_at(run_dir, size, n)
    g, saved = load_generator(stage_pt)
    inner = progan_sampler(g, g.args.z_dim, 0, torch.device("cpu"), saved.get("class_counts"))
    factor = size // g.args.resolution

    def sample(b: int):
        return F.interpolate(inner(b), scale_factor=factor, mode="nearest")

    return generator_figures(sample, n, 64, judge=judge, judge_ref=ref, seed=0)


def class_pairs(run_dir: Path, checkpoint: Path, path: Path, n: int = 32) -> list[str] | None:
    """Real frame (upper rows) vs generated (lower rows) per fixed label of a conditional run; the class
    names in grid order, or None for an unconditional run."""
    import torch.nn.functional as F

    from pokegan.data import load_manifest
    from pokegan.decode import decode_image
    from pokegan.progan.state import load_generator
    from pokegan.runs import open_run
    from pokegan.viz import save_image_grid

    g, saved = load_generator(checkpoint)
    if not g.args.n_classes:
        return None
    run = open_run(run_dir, resume=True, create=False)
    manifest = load_manifest(run.manifest_dir, data_root=run.data_root)
    size, labels = g.args.resolution, saved["fixed_labels"][:n]
    train, all_labels, paths = manifest.rows("train"), manifest.labels(), manifest.abs_paths()
    reals = []
    for c in labels.tolist():  # the class's first train frame, decoded as training decodes it
        first = train[all_labels[train] == c][0]
        reals.append(torch.from_numpy(decode_image(paths[first], size)).float() / 127.5 - 1)
    with torch.no_grad():
        fakes = g(saved["fixed_latents"][:n], labels).float().clamp(-1, 1)
    real = torch.stack(reals)
    rows = []
    for i in range(0, len(labels), 8):  # a row of reals, then the generated row for the same labels
        rows += [real[i : i + 8], fakes[i : i + 8]]
    grid = F.interpolate(torch.cat(rows), size=(64, 64), mode="nearest")
    save_image_grid(grid, path, nrow=8)
    return [manifest.classes[c] for c in labels.tolist()]


def copying(run_dir: Path, checkpoint: Path, n: int) -> dict[str, float]:
    """How close the final generator's samples sit to the train frames, beside how close held-out frames do:
    the median (and 10th percentile) over images of the mean |difference| in [-1, 1] to the nearest train
    frame of any class, mirrors included, at the last stage's size. Samples much nearer than val frames are
    copies of train frames rather than new frames of the species."""
    from pokegan.data import load_manifest
    from pokegan.decode import decode_image
    from pokegan.progan.anchor import ClassBank
    from pokegan.progan.evaluate import progan_sampler
    from pokegan.progan.state import load_generator
    from pokegan.runs import RunDir

    g, saved = load_generator(checkpoint)
    run = RunDir(run_dir)
    manifest = load_manifest(run.manifest_dir, data_root=run.data_root)
    size, paths = g.args.resolution, manifest.abs_paths()

    def frames(split: str) -> torch.Tensor:
        rows = manifest.rows(split)
        return torch.stack([torch.from_numpy(decode_image(paths[i], size)).float() / 127.5 - 1 for i in rows])

    train = frames("train")
    bank = ClassBank(train, torch.zeros(len(train), dtype=torch.long), mirror=True, max_per_class=len(train))
    val = frames("val")[:n]
    with torch.no_grad():
        fakes = progan_sampler(g, g.args.z_dim, 0, torch.device("cpu"), saved.get("class_counts"))(n).float()
    out = {}
    for name, x in (("samples", fakes.clamp(-1, 1)), ("val frames", val)):
        d = torch.cat([bank.distances(c, torch.zeros(len(c), dtype=torch.long)) for c in x.split(64)])
        out[name] = (float(d.median()), float(d.quantile(0.1)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True, help="a run with a finished (or started) progan step")
    ap.add_argument("--out", type=Path, default=Path("docs/img"))
    ap.add_argument("--samples", type=int, default=1000, help="generated images per judge evaluation")
    ap.add_argument("--prefix", default="progan-small", help="file names in --out: PREFIX-curves.png, ...")
    ap.add_argument(
        "--reuse-eval",
        action="store_true",
        help="read RUN/progan/eval.json (`poke eval --step progan`, same --n-samples) instead of judging again",
    )
    args = ap.parse_args()
    torch.set_num_threads(1)
    from pokegan.progan.evaluate import ProGANEvalConfig, evaluate_progan

    step = args.run / "progan"
    args.out.mkdir(parents=True, exist_ok=True)
    plot_curves(
        scalars(step / "tb"), args.out / f"{args.prefix}-curves.png", f"{args.run}: poke train progan"
    )
    for pattern in ("samples_*px.png", "gradflow_*px.png"):
        for src in sorted(step.glob(pattern)):
            shutil.copy(src, args.out / f"{args.prefix}-{src.stem.replace('_', '-')}.png")
    from pokegan.progan.sampling import progan_checkpoint_path

    last = progan_checkpoint_path(args.run, "final")  # final.pt, else last.pt
    names = class_pairs(args.run, last, args.out / f"{args.prefix}-classes.png")
    if names is not None:
        print(f"{args.prefix}-classes.png, by row: " + ", ".join(names))
    if args.reuse_eval and (step / "eval.json").is_file():
        figures = json.loads((step / "eval.json").read_text())
    else:
        figures = evaluate_progan(ProGANEvalConfig(run=args.run, n_samples=args.samples, device="cpu"))
    print("| checkpoint | size | step | judge FD | KID | precision | recall |")
    print("|---|---|---|---|---|---|---|")
    for name, m in figures.items():
        print(
            f"| {name} | {m['size']} | {m['step']} | {m['judge_fd']:.1f} | {m['judge_kid_mean']:.3g} | "
            f"{m['judge_precision']:.2f} | {m['judge_recall']:.2f} |"
        )
    sizes = sorted({m["size"] for m in figures.values()})
    for small, size in zip(sizes, sizes[1:], strict=False):
        if (step / f"stage_{small}px.pt").is_file():
            m = upsampled_stage(args.run, step / f"stage_{small}px.pt", size, args.samples)
            print(
                f"| stage_{small}px upsampled x{size // small} (nearest) | {size} | - | {m['judge_fd']:.1f} | "
                f"{m['judge_kid_mean']:.3g} | {m['judge_precision']:.2f} | {m['judge_recall']:.2f} |"
            )
    near = copying(args.run, last, args.samples)
    print(
        "nearest train frame, mean |diff| in [-1, 1], median (10th percentile): "
        + ", ".join(f"{k} {m:.3f} ({p:.3f})" for k, (m, p) in near.items())
    )
    for size in sizes:
        f = real_floor(args.run, size, args.samples)
        print(
            f"| real train frames | {size} | - | {f['fd']:.1f} | {f['kid_mean']:.3g} | "
            f"{f['precision']:.2f} | {f['recall']:.2f} |"
        )


if __name__ == "__main__":
    main()

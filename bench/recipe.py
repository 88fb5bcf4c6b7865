"""The seed's claims, measured at 32 px on CPU: equal training budgets per arm, judge figures over time.

Arms (every GAN arm uses the same generator architecture, the ``--preset small`` critic and settings,
and differs only in what the arm names):

(a) ``three-step``   the step-2 generator, GMM latents (the recipe: ``--preset small``'s loss and its
                     reconstruction anchor ``recon_weight``)
    ``scratch-gmm``  the same generator re-initialised at random, GMM latents, no anchor (a plain GAN)
    ``scratch-normal`` the same, N(0, I) latents
(b) ``loss-<name>``  the step-2 generator, GMM latents, each of the four losses (its default n_critic);
    the recipe's loss is the ``three-step`` arm itself, not run twice
(c) ``progan``       ``poke train progan --preset small`` (16 -> 32 px) on the same data, the same budget
    split between its stages in proportion to the preset's epochs

Budget: each arm trains for ``--budget`` seconds of *process CPU time* (all its threads summed), measured
around the training steps only; evaluation is outside it. CPU time rather than wall-clock because the
machine is shared: another job's load stretches wall-clock but not the work an arm gets. The wall-clock
of each arm is reported beside it, with the load average.

The judge (:mod:`pokegan.judge`: a network no generator trained against) scores ``--samples`` generated
images against the same seeded val reference at ``--evals`` evenly spaced points of each arm's budget:
FD, KID (mean and std), precision, recall. Outputs in ``--work``: ``results.json``, ``curves.png`` (judge
FD against training CPU time, one line per arm), ``grid-<arm>.png`` (the EMA generator, or the ProGAN
generator, on 64 fixed latents at the end of the budget) and the markdown table on stdout.

    python bench/recipe.py --manifest /work/data12/manifests/gen1 --run runs/small --budget 240
    python bench/recipe.py --manifest M --quick      # 20 s arms, a smoke run of the script itself

``--run`` names a run whose steps 1-2 and the mixture are done (e.g. a ``poke train all --preset small``
run); without it the script runs them first with ``--preset small`` into ``WORK/base``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import tomllib
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pokegan.config import load_step_config  # noqa: E402
from pokegan.steps.gan_setup import GANConfig  # noqa: E402

LOSSES = ("wgan-gp-msg", "wgan-gp", "wgan", "dcgan")


@dataclass
class Arm:
    name: str
    question: str  # "a", "b" or "c"
    overrides: dict = field(default_factory=dict)  # [gan] overrides on top of --preset small
    init: str = "pretrained"  # pretrained | scratch
    latents: str = "gmm"  # gmm | normal


def arms(recipe_loss: str) -> list[Arm]:
    out = [
        Arm("three-step", "a"),
        # a GAN from random weights has nothing to anchor: the recipe's reconstruction term is step 2's
        # task, so the scratch arms are the plain GAN (recon_weight 0), as one would train it
        Arm("scratch-gmm", "a", {"recon_weight": 0.0}, init="scratch"),
        Arm("scratch-normal", "a", {"recon_weight": 0.0}, init="scratch", latents="normal"),
    ]
    for loss in LOSSES:
        if loss != recipe_loss:  # the recipe's own loss is the three-step arm
            out.append(Arm(f"loss-{loss}", "b", {"loss": loss, "n_critic": 0}))
    out.append(Arm("progan", "c"))
    return out


class StandardNormal:
    """N(0, I) latents with the mixture's ``sample(n, generator)`` interface."""

    def __init__(self, dim: int):
        self.dim = dim

    def sample(self, n: int, generator: torch.Generator):
        return torch.randn(n, self.dim, generator=generator), None


def cpu_seconds() -> float:
    return time.process_time()


def load_avg() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


# ---- prerequisites -------------------------------------------------------------------------------------
def base_run(manifest: Path, work: Path, run: Path | None) -> Path:
    """A run with steps 1-2 and the mixture done (``--run``, or ``--preset small`` into WORK/base)."""
    from pokegan.pipeline import PipelineConfig, resolve_configs
    from pokegan.runs import RunDir
    from pokegan.steps.classify import new_run, run_classify
    from pokegan.steps.embed import run_embed
    from pokegan.steps.gmm import run_gmm
    from pokegan.steps.pretrain import run_pretrain

    if run is not None:
        if not RunDir(run).is_done("gmm"):
            raise SystemExit(f"--run {run}: the mixture (step gmm) is not done; run `poke train all` first")
        return run
    out = work / "base"
    cfgs = resolve_configs(
        PipelineConfig(manifest=manifest, out=out, preset="small", resume=True, device="cpu")
    )
    run_classify(cfgs["classify"], new_run(cfgs["classify"], manifest, out, resume=True), resume=True)
    run_embed(cfgs["embed"], out, resume=True)
    run_pretrain(cfgs["pretrain"], out, resume=True)
    run_gmm(cfgs["gmm"], out, resume=True)
    return out


class Scorer:
    """The judge and its reference features; ``score(sample_fn)`` -> the judge's figures."""

    def __init__(self, manifest_dir: Path, data_root: str | None, n: int, batch: int = 64):
        from pokegan.data import load_manifest
        from pokegan.judge import load_or_train_judge, reference_features

        self.manifest = load_manifest(manifest_dir, data_root=data_root)
        self.judge = load_or_train_judge(self.manifest)
        self.ref = reference_features(self.judge, self.manifest, image_size=32, n=n, seed=0)
        self.n, self.batch = n, batch

    @torch.no_grad()
    def score(self, sample_fn) -> dict[str, float]:
        from pokegan.judge import score
        from pokegan.metrics import generated_batches

        return score(self.judge, self.ref, generated_batches(sample_fn, self.n, self.batch), seed=0)


# ---- the arms ------------------------------------------------------------------------------------------
def _arm_run(base: Path, work: Path, arm: Arm) -> Path:
    """WORK/arms/NAME: the base run's steps 1-2 and mixture (linked), a fresh gan/."""
    out = work / "arms" / arm.name
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    shutil.copy(base / "run.json", out / "run.json")
    for step in ("classifier", "embeddings", "pretrain", "gmm"):
        os.symlink((base / step).resolve(), out / step)
    return out


def run_gan_arm(arm: Arm, base: Path, work: Path, scorer: Scorer, budget: float, evals: int) -> dict:
    from pokegan.ema import EMA
    from pokegan.models.generator import Generator, GeneratorArgs
    from pokegan.runs import open_run
    from pokegan.steps.gan import _data_iter, _train_step
    from pokegan.steps.gan_setup import build_state
    from pokegan.viz import save_image_grid

    out = _arm_run(base, work, arm)
    data = tomllib.loads((base / "classifier" / "config.toml").read_text())["data"]
    data.pop("batch_size", None)  # the arms train at --preset small's batch, whatever step 1 used
    over = {"device": "cpu", "amp": False, "metrics_samples": 64, **arm.overrides}
    cfg = load_step_config(GANConfig, "gan", preset="small", overrides=over, base={"data": data})
    run = open_run(out, resume=True, create=False)
    run.begin_step("gan", resume=False)
    st = build_state(run, cfg)
    if arm.init == "scratch":  # the same architecture, random weights
        torch.manual_seed(cfg.seed)
        st.G.load_state_dict(Generator(GeneratorArgs(**st.g_args)).state_dict())
        st.ema = EMA(st.G, cfg.ema_decay)
        st.opt_g, st.opt_d = st.loss.make_optimizers(st.G.parameters(), st.D.parameters())
    if arm.latents == "normal":
        st.gmm = StandardNormal(st.gmm.dim)
    fixed, _ = st.gmm.sample(64, torch.Generator().manual_seed(cfg.seed))

    def sample_fn_factory():
        gen = torch.Generator().manual_seed(cfg.seed + 1)

        def sample(b: int) -> torch.Tensor:
            z, _ = st.gmm.sample(b, gen)
            return st.ema.model(z.float()).float().clamp(-1, 1)

        return sample

    it = _data_iter(st)
    curve, used, wall0 = [], 0.0, time.perf_counter()
    marks = [budget * (i + 1) / evals for i in range(evals)]
    curve.append({"cpu_s": 0.0, "step": 0, **scorer.score(sample_fn_factory())})
    print(f"  {arm.name}: step 0 FD {curve[-1]['fd']:.1f}", flush=True)
    for mark in marks:
        while used < mark:
            t = cpu_seconds()
            _train_step(st, it)
            st.step += 1
            used += cpu_seconds() - t
        curve.append({"cpu_s": used, "step": st.step, **scorer.score(sample_fn_factory())})
        print(f"  {arm.name}: {used:.0f} cpu-s, step {st.step}, FD {curve[-1]['fd']:.1f}", flush=True)
    with torch.no_grad():
        grid = st.ema.model(fixed.float()).float().clamp(-1, 1)
    save_image_grid(grid, work / f"grid-{arm.name}.png", nrow=8)
    return {"curve": curve, "wall_s": time.perf_counter() - wall0, "steps": st.step}


def run_progan_arm(arm: Arm, base: Path, work: Path, scorer: Scorer, budget: float, evals: int) -> dict:
    """``--preset small``'s progan schedule compressed into the budget: each stage gets its share of CPU time
    in proportion to its epochs, each cycle entry its share of the stage; evaluation at 32 px only."""
    from pokegan.data import load_manifest
    from pokegan.progan.config import ProGANConfig
    from pokegan.progan.evaluate import progan_sampler
    from pokegan.progan.grow import fade_alpha
    from pokegan.progan.state import grow_state, new_state
    from pokegan.progan.train import (
        _class_bank,
        _images,
        _labels,
        _loader,
        class_counts,
        generate_fixed,
        train_step,
    )
    from pokegan.runs import RunDir
    from pokegan.viz import save_image_grid

    out = _arm_run(base, work, arm)
    data = tomllib.loads((base / "classifier" / "config.toml").read_text())["data"]
    # the run's image size and data root, but the preset's own ProGAN batch (64): the run's batch would
    # override the [data] nested in the preset's progan section, as it did for the 2026-12-02 figures
    data.pop("batch_size", None)
    cfg = load_step_config(
        ProGANConfig,
        "progan",
        preset="small",
        overrides={"device": "cpu", "amp": False},
        base={"data": data},
    )
    run = RunDir(out)
    manifest = load_manifest(run.manifest_dir, data_root=run.data_root)
    torch.manual_seed(cfg.seed)
    counts = class_counts(cfg, manifest) if cfg.conditional else None
    st = new_state(cfg, out, torch.device("cpu"), list(manifest.classes), str(manifest.sha256), counts)
    epochs = [sum(e.epochs for e in cfg.stage_cycle(s)) for s in cfg.sizes]
    stage_budget = [budget * e / sum(epochs) for e in epochs]

    def sample_fn_factory():
        # the EMA generator when the preset keeps one, in eval mode; a conditional one on labels drawn
        # from the train class frequencies (as `poke eval --step progan` draws them)
        inner = progan_sampler(st.sample_model, cfg.z_dim, cfg.seed + 1, torch.device("cpu"), st.class_counts)

        def sample(b: int) -> torch.Tensor:
            g = st.sample_model
            was = g.training
            g.eval()
            try:
                return inner(b)
            finally:
                g.train(was)

        return sample

    marks = [budget * (i + 1) / evals for i in range(evals)]
    curve, used, wall0 = [], 0.0, time.perf_counter()
    flows = st.flows
    for stage, size in enumerate(cfg.sizes):
        if stage:
            grow_state(st)
            flows = st.flows
        entries = cfg.stage_cycle(size)
        start, end = sum(stage_budget[:stage]), sum(stage_budget[: stage + 1])
        bounds = [
            start + (end - start) * sum(e.epochs for e in entries[: i + 1]) / epochs[stage]
            for i in range(len(entries))
        ]
        loader, epoch, fade_span = _loader(st, manifest), 0, None
        bank = _class_bank(st, manifest)  # the nearest-frame anchor's train images at this size (or None)
        while used < end:
            loader.set_epoch(stage * 100_000 + epoch)
            for batch in loader:
                entry = entries[next(i for i, b in enumerate(bounds) if used < b or i == len(bounds) - 1)]
                st.set_lr(entry.lr, entry.lr_d)
                if st.G.args.fade:  # alpha by the share of the stage's budget spent
                    fade_span = fade_span or cfg.fade_fraction * (end - start)
                    st.set_alpha(fade_alpha(int(1000 * (used - start)), int(1000 * fade_span)))
                t = cpu_seconds()
                train_step(
                    st, _images(batch), record_every=10**9, flows=flows, labels=_labels(batch), bank=bank
                )
                used += cpu_seconds() - t
                st.pos.step += 1
                st.pos.stage_step += 1
                if marks and used >= marks[0] and size == cfg.sizes[-1]:
                    marks.pop(0)
                    curve.append({"cpu_s": used, "step": st.pos.step, **scorer.score(sample_fn_factory())})
                    print(
                        f"  progan: {used:.0f} cpu-s, step {st.pos.step}, FD {curve[-1]['fd']:.1f}",
                        flush=True,
                    )
                elif marks and used >= marks[0]:
                    marks.pop(0)  # a 16 px stage: the judge sees only the final size
                if used >= end:
                    break
            epoch += 1
        st.set_alpha(1.0)
    if not curve or curve[-1]["step"] != st.pos.step:
        curve.append({"cpu_s": used, "step": st.pos.step, **scorer.score(sample_fn_factory())})
    save_image_grid(generate_fixed(st).clamp(-1, 1), work / f"grid-{arm.name}.png", nrow=8)
    return {"curve": curve, "wall_s": time.perf_counter() - wall0, "steps": st.pos.step}


# ---- report --------------------------------------------------------------------------------------------
def time_to_reach(curve: list[dict], fd: float) -> float | None:
    """CPU seconds at the first evaluation whose FD is at most ``fd`` (None: never)."""
    return next((c["cpu_s"] for c in curve if c["fd"] <= fd), None)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for name, r in results["arms"].items():
        xs = [c["cpu_s"] for c in r["curve"]]
        ys = [c["fd"] for c in r["curve"]]
        for ax, q in zip(axes, ("ac", "b"), strict=True):
            if r["question"] in q or (q == "b" and name == "three-step"):
                label = name if name != "three-step" or q != "b" else f"three-step ({results['recipe_loss']})"
                ax.plot(xs, ys, marker="o", label=label)
    axes[0].set_title("(a) pretraining and latents, (c) progan 16->32")
    axes[1].set_title("(b) the four losses from the step-2 generator")
    for ax in axes:
        ax.set_xlabel("training CPU seconds (all threads)")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    axes[0].set_ylabel("judge FD (lower is better)")
    fig.suptitle(f"bench/recipe.py: {results['budget']:.0f} CPU-s per arm, load {results['load']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def table(results: dict) -> str:
    rows = [
        "| arm | question | steps | wall s | FD start | FD end | FD best | KID end | precision | recall |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results["arms"].items():
        c0, c1 = r["curve"][0], r["curve"][-1]
        best = min(c["fd"] for c in r["curve"])
        start = f"{c0['fd']:.1f}" if c0["cpu_s"] == 0 else "-"
        rows.append(
            f"| {name} | {r['question']} | {r['steps']} | {r['wall_s']:.0f} | {start} | {c1['fd']:.1f} | "
            f"{best:.1f} | {c1['kid_mean']:.3g} ± {c1['kid_std']:.2g} | {c1['precision']:.2f} | "
            f"{c1['recall']:.2f} |"
        )
    arms_ = results["arms"]
    if {"three-step", "scratch-gmm", "scratch-normal"} <= set(arms_):
        for scratch in ("scratch-gmm", "scratch-normal"):
            target = arms_[scratch]["curve"][-1]["fd"]
            t = time_to_reach(arms_["three-step"]["curve"], target)
            rows.append(
                f"\nthree-step reaches {scratch}'s final FD ({target:.1f}) after "
                + (
                    f"{t:.0f} CPU-s of {results['budget']:.0f}"
                    if t is not None
                    else "never within the budget"
                )
            )
    return "\n".join(rows)


def _run_arm(arm: Arm, base: Path, work: Path, budget: float, evals: int, samples: int, scorer=None) -> dict:
    print(f"{arm.name} ({arm.question}), load {load_avg()}", flush=True)
    if scorer is None:  # a worker process: its own judge (cached on disk by the parent's Scorer)
        from pokegan.runs import RunDir

        run = RunDir(base)
        scorer = Scorer(run.manifest_dir, run.data_root, samples)
    fn = run_progan_arm if arm.name == "progan" else run_gan_arm
    r = fn(arm, base, work, scorer, budget, evals)
    return {"question": arm.question, "load_after": load_avg(), **r}


def _run_arm_in_process(job: tuple) -> dict:
    torch.set_num_threads(1)
    return _run_arm(*job)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", type=Path, required=True)
    ap.add_argument("--run", type=Path, default=None, help="a run with steps 1-2 and gmm done")
    ap.add_argument("--work", type=Path, default=Path("bench-recipe"))
    ap.add_argument("--budget", type=float, default=240.0, help="training CPU seconds per arm")
    ap.add_argument("--evals", type=int, default=6)
    ap.add_argument("--samples", type=int, default=1000, help="generated images per judge evaluation")
    ap.add_argument("--arms", default="", help="comma-separated subset of the arm names")
    ap.add_argument("--quick", action="store_true", help="20 CPU-s arms, 2 evaluations, 256 samples")
    ap.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="arms trained at once, each in its own one-thread process (the budget is CPU time, so "
        "parallel arms get the same work; 2 on a 2-core machine halves the wall-clock)",
    )
    args = ap.parse_args()
    if args.quick:
        args.budget, args.evals, args.samples = 20.0, 2, 256
    torch.set_num_threads(1 if args.jobs > 1 else 2)
    args.work.mkdir(parents=True, exist_ok=True)
    base = base_run(args.manifest, args.work, args.run)
    from pokegan.runs import RunDir

    run = RunDir(base)
    scorer = Scorer(run.manifest_dir, run.data_root, args.samples)  # trains and caches the judge once
    recipe_loss = load_step_config(GANConfig, "gan", preset="small").loss.name
    chosen = [a for a in arms(recipe_loss) if not args.arms or a.name in args.arms.split(",")]
    results = {
        "budget": args.budget,
        "evals": args.evals,
        "samples": args.samples,
        "recipe_loss": recipe_loss,
        "load": load_avg(),
        "torch": torch.__version__,
        "arms": {},
    }
    path = args.work / "results.json"
    results["jobs"] = args.jobs
    job = (base, args.work, args.budget, args.evals, args.samples)
    if args.jobs > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(args.jobs, mp_context=mp.get_context("spawn")) as pool:
            done = pool.map(_run_arm_in_process, [(arm, *job) for arm in chosen])
            for arm, r in zip(chosen, done, strict=True):
                results["arms"][arm.name] = r
                path.write_text(json.dumps(results, indent=2))
    else:
        for arm in chosen:
            results["arms"][arm.name] = _run_arm(arm, *job, scorer=scorer)
            path.write_text(json.dumps(results, indent=2))
    plot(results, args.work / "curves.png")
    print(table(results))
    print(f"\n{path}, {args.work / 'curves.png'}, {args.work}/grid-*.png")


if __name__ == "__main__":
    main()

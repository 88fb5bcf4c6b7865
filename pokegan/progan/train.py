"""``poke train progan``: the progressive DCGAN loop.

Stages run in order (``sizes``, e.g. 16 -> 32 -> 64); a stage runs its cycle entries in order, each for its
epochs at its learning rate; an epoch is one pass over the manifest's train split at the stage's size. Per
batch: one discriminator step (real batch vs. fresh fakes; ``loss.d_loss``, ``after_d_step``) and, every
``n_critic`` batches, one generator step (``loss.g_loss``). The loss objects are step 3's
(:mod:`pokegan.losses`); the loop only runs phases, optimizer steps, logging and snapshots.

Between stages G and D grow one block (:mod:`pokegan.progan.grow`): learned layers are copied, frozen
unless ``freeze = false``, and with ``fade_in`` the new block is blended in with alpha rising 0 -> 1 over
``fade_fraction`` of the stage.

``RUN/progan/`` receives: ``last.pt`` (every ``checkpoint_every`` steps and at every epoch's end),
``stage_<size>px.pt``, ``final.pt``; ``samples_<size>px.png`` and ``gradflow_<size>px.png`` (+ .json) per
stage; ``snapshots/<step>.png`` and ``all_samples.gif``; TensorBoard in ``tb/``; ``config.toml``;
``done.json`` last.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from itertools import islice
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from rich.table import Table

from pokedata.errors import UserError
from pokedata.log import console
from pokedata.log import out as stdout
from pokedata.store import remove_stale_temps
from pokegan import device as dev
from pokegan.config import load_step_config
from pokegan.data import canonical_order, load_manifest, loader_from_config, stratified_subset
from pokegan.device import autocast
from pokegan.diffaugment import critic_view
from pokegan.loop import Session, open_session, progress, start_run
from pokegan.progan.anchor import GROUPED, NEEDS_BANK, ClassBank, anchor_loss, cover_labels
from pokegan.progan.config import ProGANConfig, progan_config_to_toml
from pokegan.progan.gif import prune_snapshots, save_snapshot, snapshot_frame, write_gif
from pokegan.progan.gradflow import GradFlow, plot_grad_flow
from pokegan.progan.grow import build_models, fade_alpha
from pokegan.progan.models import count_params
from pokegan.progan.state import ProGANState, grow_state, load_state, new_state, save_state, stage_args
from pokegan.runs import RunDir
from pokegan.viz import save_image_grid

__all__ = ["ProGANConfig", "run_progan"]

STEP = "progan"


@dataclass
class _StageContext:
    """What the snapshot and end-of-stage helpers need besides the state."""

    total_steps: int  # batches in the whole training (the GIF's progress bar)
    flows: tuple[GradFlow, GradFlow]  # gradient flow of G and D over this stage
    writer: object  # TensorBoard SummaryWriter


def _images(batch) -> torch.Tensor:
    """The image tensor ``[B, 3, H, W]`` of a loader batch (a tensor, a tuple/list, or a dict)."""
    if isinstance(batch, dict):
        return batch["image"]
    return batch[0] if isinstance(batch, (list, tuple)) else batch


def _labels(batch) -> torch.Tensor:
    """The class indices ``[B]`` of a loader batch (tuple/list or dict)."""
    if isinstance(batch, dict):
        return batch["label"]
    return batch[1]


class Conditioned(torch.nn.Module):
    """``D`` scoring images against fixed labels: ``x -> D(x, y)``, what the loss objects call a critic
    (they score images only; DiffAugment wraps this, so the labels ride along unaugmented)."""

    def __init__(self, D: torch.nn.Module, y: torch.Tensor):
        super().__init__()
        self.D, self.y = D, y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.D(x, self.y)


def _critic(D, y: torch.Tensor | None, policy: str):
    """The critic the loss sees: D (bound to the labels when conditional), through DiffAugment if any."""
    return critic_view(D if y is None else Conditioned(D, y), policy)


def _check_finite(value: torch.Tensor, what: str, st: ProGANState) -> None:
    """Stop with a clear error when a loss is not finite on any rank (every rank stops alike)."""
    bad = not bool(torch.isfinite(value).all())
    if dev.any_true(bad, value.device):
        shown = value.item() if bad else "not finite on another rank"
        raise UserError(
            f"progan: {what} became {shown} at step {st.pos.step} ({st.size} px)",
            hint=f"{st.out / 'last.pt'} holds the last good state: resume with --resume and a lower --cycle lr",
        )


def train_step(
    st: ProGANState,
    real: torch.Tensor,
    *,
    record_every: int,
    flows: tuple[GradFlow, GradFlow],
    labels: torch.Tensor | None = None,
    bank: ClassBank | None = None,
) -> dict:
    """One discriminator step and (every ``n_critic`` batches) one generator step; returns the loss logs.

    The critic step runs ``D_train`` and the generator step ``G_train``: under torchrun (DDP) their
    gradients, the penalty's double backward included, are averaged over the ranks before the updates.
    A conditional run passes the real batch's ``labels [B]``: the fakes are drawn for the same labels, so
    real and fake share them (and the gradient penalty's interpolates too); with ``anchor_weight`` the
    generator step adds the L1 of each fake to the real image of its row (the class anchor), or with a
    ``bank`` (``anchor_match = "nearest"``) to the closest train image of its label; "cover" and "chamfer"
    draw the generator step's labels in groups (``pokegan/progan/anchor.py``).
    """
    dev, amp = st.device, st.cfg.amp
    y = labels.to(dev, non_blocking=True).long() if st.cfg.conditional else None  # [B] or None
    critic = _critic(st.D_train, y, st.cfg.diffaugment)  # D, or D(T(x)) with the same T for real and fake
    real = real.to(dev, non_blocking=True).float()  # [B, 3, S, S] in [-1, 1]
    b = real.shape[0]
    g_args = () if y is None else (y,)
    z = torch.randn(b, st.cfg.z_dim, device=dev)  # [B, z]
    with autocast(dev, amp):
        fake = st.G(z, *g_args)  # [B, 3, S, S]
        d_loss, logs = st.loss.d_loss(critic, real, fake)
    _check_finite(d_loss, "the discriminator loss", st)
    st.opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    n_critic = st.loss.n_critic
    if st.pos.stage_step % record_every == 0:  # every record_every-th D step of the stage, from its first
        flows[1].record(st.D)
    st.opt_d.step()
    st.loss.after_d_step(st.D)
    if (st.pos.stage_step + 1) % n_critic == 0:  # the last of every n_critic D steps of the stage
        grouped = st.cfg.anchor_weight > 0 and st.cfg.anchor_match in GROUPED
        y_g, k = cover_labels(y) if grouped else (y, 1)  # k candidates for each of the first B // k labels
        z = torch.randn(b if y_g is None else len(y_g), st.cfg.z_dim, device=dev)
        with autocast(dev, amp):  # D itself: its gradients here are dropped, not averaged
            fake = st.G_train(z, *(() if y_g is None else (y_g,)))  # [B, 3, S, S]
            g_loss, g_logs = st.loss.g_loss(_critic(st.D, y_g, st.cfg.diffaugment), fake)
            if st.cfg.anchor_weight > 0:  # fake i and real i share label i (grouped: real i // k)
                l1 = anchor_loss(st.cfg.anchor_match, fake, real, y_g, k, st.cfg.anchor_size, bank)
                g_logs["g_anchor_l1"] = float(l1.detach())
                g_loss = g_loss + st.cfg.anchor_weight * l1
        _check_finite(g_loss, "the generator loss", st)
        st.opt_g.zero_grad(set_to_none=True)
        st.scaler_g.scale(g_loss).backward()  # a no-op scale unless G runs under fp16 autocast
        st.scaler_g.unscale_(st.opt_g)  # the gradient-flow record reads true gradients
        if (st.pos.stage_step // n_critic) % record_every == 0:  # every record_every-th G step
            flows[0].record(st.G)
        st.scaler_g.step(st.opt_g)
        st.scaler_g.update()
        if st.ema is not None:
            st.ema.update(st.G)
        logs.update(g_logs)
    return logs


@torch.no_grad()
def generate_fixed(st: ProGANState, batch: int = 64) -> torch.Tensor:
    """The generator (its EMA copy if any; eval mode) on the fixed latents (and labels, when conditional):
    ``[n_fixed, 3, S, S]`` on CPU."""
    g = st.sample_model
    was = g.training
    g.eval()
    zs = st.fixed_z.split(batch)
    ys = st.fixed_y.split(batch) if st.fixed_y is not None else [None] * len(zs)
    try:
        out = [g(z, *(() if y is None else (y,))).float().cpu() for z, y in zip(zs, ys, strict=True)]
    finally:
        g.train(was)
    return torch.cat(out)


def _snapshot(st: ProGANState, ctx: _StageContext) -> None:
    """A GIF frame in ``snapshots/`` and the sample grid in TensorBoard."""
    images = generate_fixed(st)
    size = st.cfg.gif_size or max(64, st.cfg.sizes[-1])
    caption = f"{st.size}px  step {st.pos.step}" + (f"  alpha {st.G.alpha:.2f}" if st.G.args.fade else "")
    frame = snapshot_frame(images, size, caption, st.pos.step / max(1, ctx.total_steps))
    save_snapshot(frame, st.out / "snapshots", st.pos.step)
    if ctx.writer is not None:
        ctx.writer.add_image("progan/samples", np.asarray(frame), st.pos.step, dataformats="HWC")


def _log(st: ProGANState, ctx: _StageContext, logs: dict, lr: tuple[float, float]) -> None:
    if ctx.writer is None:
        return
    for key, value in logs.items():
        ctx.writer.add_scalar(f"progan/{key}", value, st.pos.step)
    ctx.writer.add_scalar("progan/alpha", st.G.alpha, st.pos.step)
    ctx.writer.add_scalar("progan/resolution", st.size, st.pos.step)
    ctx.writer.add_scalar("progan/lr_g", lr[0], st.pos.step)
    ctx.writer.add_scalar("progan/lr_d", lr[1], st.pos.step)


def _end_stage(st: ProGANState, ctx: _StageContext) -> None:
    """Stage pictures (sample grid, gradient flow), the GIF so far, the stage checkpoint (rank 0)."""
    if not dev.is_main():
        return
    size, out = st.size, st.out
    if not (out / "snapshots" / f"{st.pos.step:09d}.png").is_file():
        _snapshot(st, ctx)
    images = generate_fixed(st)
    show = max(64, size)
    if size < show:
        images = F.interpolate(images, size=(show, show), mode="nearest")
    grid = out / f"samples_{size}px.png"
    save_image_grid(images, grid, nrow=max(1, math.ceil(math.sqrt(len(images)))))
    flow = plot_grad_flow(
        list(ctx.flows), out / f"gradflow_{size}px.png", title=f"gradient flow, {size} px stage"
    )
    if ctx.writer is not None:
        with Image.open(flow) as im:
            ctx.writer.add_image(
                f"progan/gradflow_{size}px", np.asarray(im.convert("RGB")), st.pos.step, dataformats="HWC"
            )
        ctx.writer.flush()
    frames = write_gif(out / "snapshots", out / "all_samples.gif", st.cfg.gif_frame_ms)
    save_state(st, out / f"stage_{size}px.pt")
    console.print(
        f"progan: {size} px stage done at step {st.pos.step}: {grid.name}, {flow.name}, {frames} GIF frames"
    )


def _loader(st: ProGANState, manifest):
    """The train split at the stage's size: batches ``(images [B, 3, S, S] in [-1, 1], labels, rows)``.

    Flips only (``crop_scale`` 1): the fakes get no crop, so a crop of the reals would be learnt. Under
    torchrun each rank reads its shard."""
    data = replace(st.cfg.data, image_size=st.size, crop_scale=1.0)
    return loader_from_config(manifest, "train", data, train=True, device=st.device)


def _class_bank(st: ProGANState, manifest) -> ClassBank | None:
    """The nearest-frame anchor's bank: every train image the loader draws from, at the stage's size, unflipped
    (plus mirrors when the loader flips); ``None`` unless the anchor is on with ``anchor_match`` "nearest"
    or "chamfer".
    Every rank reads all of them (the anchor compares with the whole class, not the rank's shard)."""
    cfg = st.cfg
    if cfg.anchor_weight <= 0 or cfg.anchor_match not in NEEDS_BANK:
        return None
    data = replace(cfg.data, image_size=st.size, batch_size=256)
    rows = _train_rows(cfg, manifest)
    loader = loader_from_config(
        manifest, "train", data, train=False, device=st.device, distributed=False, rows=rows
    )
    images, labels = zip(*[(x, y) for x, y, _ in loader], strict=True)
    return ClassBank(
        torch.cat(images),
        torch.cat(labels).to(st.device),
        size=cfg.anchor_size,
        mirror=cfg.data.augment,
        seed=cfg.seed,
    )


def _run_stage(s: Session, st: ProGANState, manifest) -> None:
    """Train the current stage from ``st.pos`` to its end (resuming mid-epoch when ``pos.batch > 0``)."""
    cfg, pos = st.cfg, st.pos
    entries = cfg.stage_cycle(st.size)
    loader = _loader(st, manifest)
    bank = _class_bank(st, manifest)
    spe = len(loader)
    if spe < 1:
        raise UserError(
            f"the train split has fewer images than one batch ({cfg.data.batch_size})",
            hint="lower --batch-size",
        )
    stage_steps = sum(e.epochs for e in entries) * spe
    total = sum(sum(e.epochs for e in cfg.stage_cycle(size)) for size in cfg.sizes) * spe
    fade_steps = int(cfg.fade_fraction * stage_steps) if st.G.args.fade else 0
    ctx = _StageContext(total, st.flows, s.writer)
    with progress(s.main) as bar:
        task = bar.add_task(f"progan {st.size}px", total=stage_steps, completed=pos.stage_step, info="")
        while pos.entry < len(entries):
            entry = entries[pos.entry]
            st.set_lr(entry.lr, entry.lr_d)
            while pos.epoch < entry.epochs:
                # a seeded order per (stage, epoch); resuming mid-epoch skips the batches already done
                loader.set_epoch(pos.stage * 100_000 + pos.stage_step // spe, start_batch=pos.batch)
                for batch in islice(loader, spe - pos.batch):
                    if fade_steps:
                        st.set_alpha(fade_alpha(pos.stage_step, fade_steps))
                    logs = train_step(
                        st,
                        _images(batch),
                        record_every=cfg.gradflow_every,
                        flows=ctx.flows,
                        labels=_labels(batch),
                        bank=bank,
                    )
                    pos.batch, pos.step, pos.stage_step = pos.batch + 1, pos.step + 1, pos.stage_step + 1
                    if pos.step % cfg.log_every == 0:
                        _log(st, ctx, logs, (entry.lr, entry.lr_d))
                        info = " ".join(f"{k} {v:.3f}" for k, v in logs.items() if k in ("d_loss", "g_loss"))
                        bar.update(task, info=info + (f" alpha {st.G.alpha:.2f}" if fade_steps else ""))
                    if pos.step % cfg.sample_every == 0 and s.main:
                        _snapshot(st, ctx)
                    if pos.step % cfg.checkpoint_every == 0:
                        save_state(st, st.out / "last.pt")
                    bar.update(task, completed=pos.stage_step)
                pos.epoch, pos.batch = pos.epoch + 1, 0
                save_state(st, st.out / "last.pt")
            pos.entry, pos.epoch = pos.entry + 1, 0
        if fade_steps:
            st.set_alpha(1.0)
        _end_stage(st, ctx)


def _train_rows(cfg: ProGANConfig, manifest) -> np.ndarray:
    """The train rows the loader draws from (the ``max_images`` subset, if any)."""
    rows = canonical_order(manifest, manifest.rows("train"))
    return stratified_subset(rows, manifest.labels(), cfg.data.max_images, cfg.data.seed)


def class_counts(cfg: ProGANConfig, manifest) -> list[int]:
    """Train images per class as the loader draws them (``max_images`` subset; ``balanced``: every present
    class alike): the prior a conditional generator's samples draw their labels from."""
    counts = np.bincount(manifest.labels()[_train_rows(cfg, manifest)], minlength=manifest.num_classes)
    if cfg.data.balanced:
        counts = (counts > 0).astype(np.int64)
    return [int(c) for c in counts]


def describe(cfg: ProGANConfig, n_classes: int = 0) -> list[dict]:
    """Per stage: size, cycle entries and generator/discriminator parameter counts (for --dry-run);
    ``n_classes``: the manifest's, for a conditional run's class embeddings."""
    rows = []
    for i, size in enumerate(cfg.sizes):
        with torch.device("meta"):
            g, d = build_models(stage_args(cfg, i, n_classes), freeze=cfg.freeze)
        rows.append(
            {
                "size": size,
                "cycle": [asdict(e) for e in cfg.stage_cycle(size)],
                "g_params": count_params(g),
                "d_params": count_params(d),
                "g_trainable": count_params(g, trainable_only=True),
                "d_trainable": count_params(d, trainable_only=True),
            }
        )
    return rows


def run_progan(cfg: ProGANConfig, run: RunDir | Path | str, *, resume: bool = False) -> dict:
    """Train the progressive DCGAN in ``RUN/progan/``; returns the summary.

    A finished step (``done.json``) is not retrained. With ``resume`` an interrupted run continues from
    ``progan/last.pt``; without it a started step is refused rather than overwritten. Under torchrun G and
    D train under DDP on sharded data; rank 0 draws, logs and saves.
    """
    cfg.validate()
    s = open_session(STEP, cfg, run, resume=resume, to_toml=progan_config_to_toml)
    if s.done:
        return s.done_summary()
    out, last = s.dir, s.dir / "last.pt"
    if s.main:
        remove_stale_temps(out)
    manifest = load_manifest(s.run.manifest_dir, data_root=cfg.data.data_root or s.run.data_root)
    counts = class_counts(cfg, manifest) if cfg.conditional else None
    st = new_state(cfg, out, s.device, list(manifest.classes), str(manifest.sha256), counts)
    if last.is_file():
        load_state(st, last)
        console.print(
            f"progan: resuming at step {st.pos.step}: {st.size} px, cycle entry {st.pos.entry + 1}, "
            f"epoch {st.pos.epoch + 1}, batch {st.pos.batch}, alpha {st.G.alpha:.2f}"
        )
    if s.main:
        prune_snapshots(out / "snapshots", st.pos.step)
    s.open_writer(purge_step=st.pos.step)
    try:
        while True:
            _run_stage(s, st, manifest)
            if st.pos.stage + 1 >= len(cfg.sizes):
                break
            report = grow_state(st)
            console.print(
                f"progan: grew to {st.size} px: {len(report.copied['G'])}+{len(report.copied['D'])} tensors copied, "
                f"frozen G {report.frozen['G'] or 'none'}, D {report.frozen['D'] or 'none'}"
            )
            save_state(st, last)
    finally:
        s.close()
    return _finish(s, st)


def _finish(s: Session, st: ProGANState) -> dict:
    """final.pt, the GIF of every snapshot and done.json (rank 0)."""
    cfg, out = st.cfg, st.out
    save_state(st, out / "final.pt")
    frames = write_gif(out / "snapshots", out / "all_samples.gif", cfg.gif_frame_ms) if s.main else 0
    summary = {
        "steps": st.pos.step,
        "sizes": cfg.sizes,
        "stages": [
            {
                "size": size,
                "grid": str(out / f"samples_{size}px.png"),
                "gradflow": str(out / f"gradflow_{size}px.png"),
                "checkpoint": str(out / f"stage_{size}px.pt"),
            }
            for size in cfg.sizes
        ],
        "gif": str(out / "all_samples.gif"),
        "gif_frames": frames,
        "final": str(out / "final.pt"),
    }
    summary = s.finish(dev.broadcast_object(summary))
    console.print(
        f"[green]progan: done[/] after {st.pos.step} steps; {frames} frames in {out / 'all_samples.gif'}"
    )
    return summary


@dataclass
class ProGANJob:
    """What ``poke train progan`` asks for: where, which config layers, and resume / dry-run."""

    run: Path | None = None  # an existing run directory (runs/NAME)
    out: Path | None = None  # a new run directory (with manifest)
    manifest: Path | None = None
    data_root: Path | None = None
    config_file: Path | None = None
    preset: str | None = None
    overrides: dict = field(default_factory=dict)
    resume: bool = False
    dry_run: bool = False


def train_progan(job: ProGANJob) -> dict:
    """Open (or create) the run, resolve ``[progan]`` (preset <- file <- options), then dry-run or train.

    On ``--resume`` without ``--config`` the step's own ``config.toml`` is the file layer, so a resumed run
    keeps its settings; options given again still override.
    """
    if (job.run is None) == (job.out is None):
        raise UserError(
            "give exactly one of --run (an existing run) or --out (a new one)", hint="e.g. --run runs/NAME"
        )
    if job.out is not None and job.manifest is None:
        raise UserError(
            "--out starts a new run and needs --manifest",
            hint="e.g. --manifest manifests/NAME --out runs/NAME",
        )
    # the config first: a bad option must not leave a half-created run directory behind
    saved = RunDir(Path(job.run or job.out)).step_dir(STEP) / "config.toml"
    config_file = job.config_file
    if config_file is None and job.resume and saved.is_file():
        config_file = saved
    overrides = dict(job.overrides)
    if job.data_root is not None:
        overrides["data.data_root"] = str(job.data_root)
    cfg = load_step_config(
        ProGANConfig, "progan", config_file=config_file, preset=job.preset, overrides=overrides
    )
    if job.dry_run:
        manifest_dir = job.manifest
        if manifest_dir is None and RunDir(Path(job.run)).meta_path.is_file():
            manifest_dir = RunDir(Path(job.run)).manifest_dir
        return dry_run(cfg, manifest_dir, cfg.data.data_root or None)
    run = job.run
    if job.out is not None:
        load_manifest(job.manifest, data_root=cfg.data.data_root or None)  # a bad --manifest creates no run
        run = start_run(job.out, job.manifest, resume=job.resume, data_root=job.data_root)
    return run_progan(cfg, run, resume=job.resume)


def dry_run(cfg: ProGANConfig, manifest_dir: Path | None = None, data_root: str | None = None) -> dict:
    """Print the resolved config (TOML, stdout) and a per-stage table (stderr); train nothing.

    With a manifest: the steps per stage (batches per epoch of the train split, as the loader cuts it) and,
    for a conditional run, parameter counts with its class embeddings."""
    stdout.print(progan_config_to_toml(cfg), markup=False, highlight=False)
    manifest = load_manifest(manifest_dir, data_root=data_root or None) if manifest_dir is not None else None
    spe = max(1, len(_train_rows(cfg, manifest)) // cfg.data.batch_size) if manifest is not None else None
    rows = describe(cfg, manifest.num_classes if manifest is not None else 0)
    table = Table(title="progan stages (dry run: nothing trained)")
    for col in ("size", "cycle (lr x epochs)", "steps", "G params", "D params", "trainable G / D"):
        table.add_column(col)
    for r in rows:
        cycle = ", ".join(f"{e['lr']:g} x {e['epochs']}" for e in r["cycle"])
        r["steps"] = spe * sum(e["epochs"] for e in r["cycle"]) if spe else None
        table.add_row(
            f"{r['size']} px",
            cycle,
            f"{r['steps']:,}" if r["steps"] else "?",
            f"{r['g_params']:,}",
            f"{r['d_params']:,}",
            f"{r['g_trainable']:,} / {r['d_trainable']:,}",
        )
    console.print(table)
    if spe:
        console.print(f"steps per epoch: {spe} (batch size {cfg.data.batch_size})")
    if cfg.conditional and manifest is None:
        console.print("conditional: the class embeddings are not counted (give --manifest for them)")
    return {"dry_run": True, "steps_per_epoch": spe, "stages": rows}

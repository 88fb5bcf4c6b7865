"""Step 3b, ``poke train gan``: GAN fine-tuning of the step-2 generator from GMM latents.

The loop only runs phases, optimizer steps, EMA, logging and snapshots (the stylegan2-ada split); how
to score lives in :mod:`pokegan.losses`, the critics in :mod:`pokegan.models.discriminator`, the
setup and checkpoint plumbing in :mod:`pokegan.steps.gan_setup`.

Per generator step: ``n_critic`` critic steps (real batch, fake from GMM latents, ``loss.d_loss``,
``after_d_step``), then one generator step (``loss.g_loss``) and an EMA update. Every ``sample_every``
steps a grid of the EMA generator on the fixed latents goes to ``gan/grids/`` and TensorBoard; every
``metrics_every`` steps the judge's figures (FD, KID, precision, recall; :mod:`pokegan.judge`) and the
step-1 classifier's FCD/FCK against the val images go to ``gan/metrics.jsonl`` and the best EMA generator
by the judge's FD to ``gan/best.pt``; every ``checkpoint_every`` steps ``gan/last.pt``.

NaN or inf in a loss: reload ``last.pt``, multiply the learning rates by ``nan_lr_factor``, and go on;
after ``max_nan_retries`` such events stop with a clear error. Nothing is trained on garbage: the bad
step's update is never applied.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import torch

from pokedata.errors import UserError
from pokedata.log import console
from pokedata.store import atomic_write_bytes, atomic_write_text
from pokegan.device import autocast
from pokegan.steps.gan_setup import (
    GANConfig,
    GANState,
    _truncate_metrics,
    build_state,
    load_state,
    save_state,
)

__all__ = ["GANConfig", "run_gan"]


class NonFiniteLoss(Exception):
    """A loss came out NaN or inf: the loop reloads the last good checkpoint."""


def _check(loss: torch.Tensor, what: str, step: int) -> None:
    if not torch.isfinite(loss).all():
        raise NonFiniteLoss(f"{what} is {loss.item()} at step {step}")


def _data_iter(st: GANState):
    """Endless batches of real images ``[B, 3, H, W]`` in [-1, 1] from the state's data position.

    ``st.data_epoch`` / ``st.data_batch`` count the batches handed out; checkpoints save them, so a resume
    or a NaN reload continues with the batch after the saved one (the sampler's order and the flips are
    pure functions of seed, epoch and batch), not with epoch 0, batch 0.
    """
    while True:
        st.loader.set_epoch(st.data_epoch, st.data_batch)
        for batch in st.loader:
            st.data_batch += 1
            yield batch[0] if isinstance(batch, (list, tuple)) else batch
        st.data_epoch, st.data_batch = st.data_epoch + 1, 0


def _sample_latents(st: GANState, n: int) -> torch.Tensor:
    z, _ = st.gmm.sample(n, st.latent_gen)
    return z.to(st.device, non_blocking=True)


def _fake(st: GANState, z: torch.Tensor):
    """Generator output: a pyramid (coarse -> fine) for multi-scale losses, else the final images."""
    return st.G.forward_multiscale(z) if st.loss.multiscale else st.G(z)


def _real(st: GANState, x: torch.Tensor):
    from pokegan.models.discriminator import image_pyramid

    x = x.to(st.device, non_blocking=True).float()
    return image_pyramid(x, st.scales) if st.loss.multiscale else x


def _recon_anchor(st: GANState, x: torch.Tensor, stats: dict[str, float]) -> torch.Tensor:
    """``recon_weight`` x pixel L1 between real images ``x [B,3,S,S]`` and G's reconstruction of them
    from their frozen-classifier embeddings (the latents step 2 trained G on)."""
    import torch.nn.functional as F

    x = x.to(st.device, non_blocking=True).float()
    with torch.no_grad():
        emb = st.classifier.embed(x)  # [B, 512]
    l1 = F.l1_loss(st.G(emb).float(), x)
    stats["g_recon_l1"] = float(l1.detach())
    return st.cfg.recon_weight * l1


def _train_step(st: GANState, data) -> dict[str, float]:
    """One generator step with its ``n_critic`` critic steps; raises NonFiniteLoss before any bad update."""
    from pokegan.diffaugment import critic_view

    cfg, loss = st.cfg, st.loss
    critic = critic_view(st.D, cfg.diffaugment)  # D, or D(T(x)) with the same T for real and fake
    stats: dict[str, float] = {}
    st.G.requires_grad_(False)
    st.D.requires_grad_(True)
    for _ in range(loss.n_critic):
        x = next(data)
        real = _real(st, x)
        z = _sample_latents(st, len(x))  # as many fakes as reals: the penalty pairs them (a small
        # train split gives batches smaller than [data] batch_size)
        with autocast(st.device, cfg.amp), torch.no_grad():
            fake = _fake(st, z)
        with autocast(st.device, cfg.amp):
            ld, stats_d = loss.d_loss(critic, real, fake)
        _check(ld, "the discriminator loss", st.step)
        st.opt_d.zero_grad(set_to_none=True)
        ld.backward()
        st.opt_d.step()
        loss.after_d_step(st.D)
        stats.update(stats_d)
    st.G.requires_grad_(True)
    st.D.requires_grad_(False)
    z = _sample_latents(st, cfg.data.batch_size)
    with autocast(st.device, cfg.amp):
        lg, stats_g = loss.g_loss(critic, _fake(st, z))
        if cfg.recon_weight > 0:  # the anchor: step 2's task on the last real batch
            lg = lg + _recon_anchor(st, x, stats_g)
    _check(lg, "the generator loss", st.step)
    st.opt_g.zero_grad(set_to_none=True)
    st.scaler_g.scale(lg).backward()  # a no-op scale unless G runs under fp16 autocast
    st.scaler_g.step(st.opt_g)
    st.scaler_g.update()
    st.ema.update(st.G)
    st.D.requires_grad_(True)
    stats.update(stats_g)
    return stats


@torch.no_grad()
def _snapshot_grid(st: GANState, writer, name: str) -> Path:
    from torchvision.utils import make_grid

    from pokegan.viz import save_image_grid

    imgs = st.ema.model(st.fixed_latents.to(st.device)).float().clamp(-1, 1).cpu()
    nrow = max(1, int(math.sqrt(len(imgs))))
    path = st.out / "grids" / f"{name}.png"
    save_image_grid(imgs, path, nrow=nrow)
    if writer is not None:
        writer.add_image("samples/ema_fixed_latents", make_grid((imgs + 1) / 2, nrow=nrow), st.step)
    return path


def _evaluate(st: GANState, writer) -> dict[str, float]:
    from pokegan.metrics import generator_figures

    g = st.ema.model
    gen = torch.Generator().manual_seed(st.cfg.seed + 1)  # the same latents at every evaluation

    def sample(b: int) -> torch.Tensor:
        z, _ = st.gmm.sample(b, gen)
        with autocast(st.device, st.cfg.amp):
            return g(z.to(st.device)).float().clamp(-1, 1)

    m = generator_figures(
        sample,
        st.cfg.metrics_samples,
        st.cfg.data.batch_size,
        judge=st.judge,
        judge_ref=st.judge_ref,
        classifier=st.classifier,
        real_stats=st.real_stats,
        seed=st.cfg.seed,
    )
    m["step"] = st.step
    path = st.out / "metrics.jsonl"  # rewritten atomically: a kill never leaves half a row
    old = path.read_text(encoding="utf-8") if path.is_file() else ""
    atomic_write_text(path, old + json.dumps(m) + "\n")
    console.print(
        f"gan step {st.step}: judge FD {m['judge_fd']:.4g}, KID {m['judge_kid_mean']:.4g} "
        f"+- {m['judge_kid_std']:.2g}, precision {m['judge_precision']:.2f}, recall {m['judge_recall']:.2f}"
        f" | step-1 FCD {m['fcd']:.4g}"
    )
    if writer is not None:
        for k in ("judge_fd", "judge_kid_mean", "judge_precision", "judge_recall", "fcd", "fck"):
            writer.add_scalar(f"metrics/{k}", m[k], st.step)
    return m


def _recover(st: GANState, err: NonFiniteLoss) -> None:
    """Reload the last good checkpoint, lower the learning rates; give up after max_nan_retries."""
    st.nan_events += 1
    retries = st.nan_events
    if retries > st.cfg.max_nan_retries:
        raise UserError(
            f"GAN training diverged: {err}; reloaded the last good checkpoint and lowered the learning rate "
            f"{st.cfg.max_nan_retries} times without success",
            hint="lower --lr-g/--lr-d, raise gp_weight, or try another --loss; gan/last.pt holds the last good state",
        )
    lr_scale = st.lr_scale * st.cfg.nan_lr_factor
    best, best_step = st.best_judge_fd, st.best_step  # best.pt may be newer than last.pt: keep its record
    load_state(st, st.out / "last.pt")
    st.nan_events, st.lr_scale = retries, lr_scale
    if best < st.best_judge_fd:
        st.best_judge_fd, st.best_step = best, best_step
    st.apply_lr()
    console.print(
        f"[yellow]gan: {err}: reloaded step {st.step} from last.pt, learning rates x{lr_scale:g} "
        f"(retry {retries}/{st.cfg.max_nan_retries})[/]"
    )


def _kept(st: GANState, history: list[dict]) -> dict:
    """Which generator the run keeps (``best.pt``, what ``poke sample`` uses), said plainly on the console."""
    start = next((m for m in history if m.get("step") == 0), None)
    kept = {
        "step": st.best_step,
        "judge_fd": st.best_judge_fd,
        "start_judge_fd": start["judge_fd"] if start else None,
    }
    if st.best_step == 0:
        kept["note"] = (
            "the GAN phase did not improve on the step-2 generator under the judge (FD): "
            "best.pt keeps the starting generator (step 0)"
        )
        console.print(f"[yellow]gan: {kept['note']}[/]")
    elif start is not None:
        kept["note"] = (
            f"best.pt: step {st.best_step}, judge FD {st.best_judge_fd:.4g} "
            f"(the step-2 generator, step 0: {start['judge_fd']:.4g})"
        )
        console.print(f"gan: {kept['note']}")
    return kept


def run_gan(
    cfg: GANConfig,
    run_dir,
    *,
    resume: bool = False,
    on_step: Callable[[int], None] | None = None,
    scratch_args: dict | None = None,
) -> dict:
    """Train step 3 in ``RUN/gan/``; with ``resume`` continues from ``last.pt``; writes ``done.json`` last.

    ``on_step(step)`` is called after every generator step (progress hooks; tests inject failures).
    ``scratch_args``: the generator ``from_scratch`` builds (:func:`gan_setup.scratch_generator_args`).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from torch.utils.tensorboard import SummaryWriter

    from pokegan.runs import RunDir, open_run

    cfg.validate()
    run = run_dir if isinstance(run_dir, RunDir) else open_run(run_dir, resume=True, create=False)
    if run.is_done("gan"):
        console.print("[dim]gan: done.json exists, skipping[/]")
        return run.done_summary("gan")
    run.begin_step("gan", resume=resume)
    st = build_state(run, cfg, scratch_args)
    out = st.out
    if (out / "last.pt").is_file():
        load_state(st, out / "last.pt")
        if (out / "best.pt").is_file():  # best.pt may be newer than last.pt: keep its record
            from pokegan.checkpoint import load_checkpoint

            best = load_checkpoint(out / "best.pt")
            if float(best.get("best_judge_fd", math.inf)) < st.best_judge_fd:
                st.best_judge_fd, st.best_step = float(best["best_judge_fd"]), int(best["best_step"])
        console.print(f"gan: resumed from last.pt at step {st.step}")
    else:
        # the starting generator is a candidate too: best.pt never ends worse than what step 3 started from
        _truncate_metrics(out / "metrics.jsonl", -1)  # rows of a start killed before its first last.pt
        m = _evaluate(st, None)
        st.best_judge_fd, st.best_step = m["judge_fd"], 0
        save_state(st, out / "best.pt")
        save_state(st, out / "last.pt")  # a good state to fall back to from the very first step
    data = _data_iter(st)
    writer = SummaryWriter(str(out / "tb"), purge_step=st.step or None)
    t0, stats = time.perf_counter(), {}
    try:
        with Progress(
            TextColumn("gan"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        ) as bar:
            task = bar.add_task("gan", total=cfg.steps, completed=st.step, info="")
            while st.step < cfg.steps:
                try:
                    stats = _train_step(st, data)
                except NonFiniteLoss as err:
                    _recover(st, err)
                    data = _data_iter(st)  # from the reloaded data position
                    bar.update(task, completed=st.step)
                    continue
                st.step += 1
                if st.step % cfg.log_every == 0 or st.step == cfg.steps:
                    for k, v in stats.items():
                        writer.add_scalar(f"loss/{k}", v, st.step)
                    bar.update(
                        task,
                        info=" ".join(f"{k} {v:.3g}" for k, v in stats.items() if k in ("d_loss", "g_loss")),
                    )
                if st.step % cfg.sample_every == 0:
                    _snapshot_grid(st, writer, f"step-{st.step:07d}")
                if st.step % cfg.metrics_every == 0 or st.step == cfg.steps:
                    m = _evaluate(st, writer)
                    if m["judge_fd"] < st.best_judge_fd:
                        st.best_judge_fd, st.best_step = m["judge_fd"], st.step
                        save_state(st, out / "best.pt")
                if st.step % cfg.checkpoint_every == 0 or st.step == cfg.steps:
                    save_state(st, out / "last.pt")
                bar.update(task, completed=st.step)
                if on_step is not None:
                    on_step(st.step)
    finally:
        writer.close()
    save_state(st, out / "final.pt")
    grid = _snapshot_grid(st, None, "final")
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    final_metrics = history[-1] if history else {}
    kept = _kept(st, history)
    if kept["step"] != st.step:  # samples.png shows what `poke sample` (best.pt by default) gives
        from pokegan.checkpoint import load_checkpoint

        st.ema.load_state_dict(load_checkpoint(out / "best.pt")["ema"])
        grid = _snapshot_grid(st, None, f"best-step-{kept['step']:07d}")
    atomic_write_bytes(out / "samples.png", grid.read_bytes())
    summary = {
        "steps": st.step,
        "loss": cfg.loss,
        "final_metrics": final_metrics,
        "best_judge_fd": st.best_judge_fd,
        "best_step": kept["step"],
        "kept": kept,
        "nan_events": st.nan_events,
        "lr_scale": st.lr_scale,
        "seconds_this_session": time.perf_counter() - t0,
        "sample_grid": str(out / "samples.png"),
        "final_checkpoint": str(out / "final.pt"),
        "best_checkpoint": str(out / "best.pt"),
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    run.mark_done("gan", summary)
    return summary

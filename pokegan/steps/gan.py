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
from collections.abc import Callable
from pathlib import Path

import torch
from torchvision.utils import make_grid

from pokedata.errors import UserError
from pokedata.log import console
from pokedata.store import atomic_write_bytes, atomic_write_text
from pokegan import device as dev
from pokegan.checkpoint import load_checkpoint
from pokegan.diffaugment import critic_view
from pokegan.evaluate import generator_figures
from pokegan.loop import Session, open_session, progress
from pokegan.losses import anchor_l1
from pokegan.models.discriminator import image_pyramid
from pokegan.runs import RunDir
from pokegan.steps.gan_setup import GANConfig, GANState, build_state, load_state, save_state
from pokegan.viz import save_image_grid

__all__ = ["GANConfig", "run_gan"]


class NonFiniteLoss(Exception):
    """A loss came out NaN or inf (on any rank): the loop reloads the last good checkpoint."""


def _check(loss: torch.Tensor, what: str, step: int) -> None:
    """Raise NonFiniteLoss on every rank when the loss is not finite on any (they then reload together)."""
    bad = not bool(torch.isfinite(loss).all())
    if dev.any_true(bad, loss.device):
        raise NonFiniteLoss(
            f"{what} is {loss.item() if bad else 'not finite on another rank'} at step {step}"
        )


def _data_iter(st: GANState):
    """Endless batches of real images ``[B, 3, H, W]`` in [-1, 1] from the state's data position.

    ``st.data_epoch`` / ``st.data_batch`` count the batches handed out; checkpoints save them, so a resume
    or a NaN reload continues with the batch after the saved one (the sampler's order and the flips are
    pure functions of seed, epoch and batch), not with epoch 0, batch 0. Under torchrun each rank reads its
    shard of every epoch.
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
    x = x.to(st.device, non_blocking=True).float()
    return image_pyramid(x, st.scales) if st.loss.multiscale else x


def _critic_step(st: GANState, data) -> tuple[dict[str, float], torch.Tensor]:
    """One critic update on a real batch and as many fakes (the penalty pairs them; a small train split
    gives batches smaller than [data] batch_size): (its stats, the real batch). Under torchrun ``D_train``
    is DDP: its gradients, the penalty's double backward included, are averaged over the ranks."""
    cfg, loss = st.cfg, st.loss
    x = next(data)
    real = _real(st, x)
    z = _sample_latents(st, len(x))
    with dev.autocast(st.device, cfg.amp), torch.no_grad():
        fake = _fake(st, z)
    critic = critic_view(st.D_train, cfg.diffaugment)  # D, or D(T(x)) with the same T for real and fake
    with dev.autocast(st.device, cfg.amp):
        ld, stats = loss.d_loss(critic, real, fake)
    _check(ld, "the discriminator loss", st.step)
    st.opt_d.zero_grad(set_to_none=True)
    ld.backward()
    st.opt_d.step()
    loss.after_d_step(st.D)
    return stats, x


def _split(out, n: int):
    """G's output on ``[z; embeddings]`` -> (the first ``n``: fakes as the loss takes them, pyramid or
    images; the rest: the finest images ``[m, 3, S, S]``, the anchor's reconstructions)."""
    if isinstance(out, (list, tuple)):
        return [o[:n] for o in out], out[-1][n:]
    return out[:n], out[n:]


def _train_step(st: GANState, data) -> dict[str, float]:
    """One generator step with its ``n_critic`` critic steps; raises NonFiniteLoss before any bad update."""
    cfg, loss = st.cfg, st.loss
    stats: dict[str, float] = {}
    st.G.requires_grad_(False)
    st.D.requires_grad_(True)
    for _ in range(loss.n_critic):
        stats_d, x = _critic_step(st, data)
        stats.update(stats_d)
    st.G.requires_grad_(True)
    st.D.requires_grad_(False)
    n = cfg.data.batch_size
    z = _sample_latents(st, n)  # [n, 512]
    if cfg.recon_weight > 0:  # the anchor: G also redraws the last real batch from its embeddings
        real = x.to(st.device, non_blocking=True).float()  # [m, 3, S, S]
        with torch.no_grad():
            z = torch.cat([z, st.classifier.embed(real).to(z.dtype)])  # [n + m, 512]
    critic = critic_view(st.D, cfg.diffaugment)  # the frozen critic itself: no gradient of D to average
    with dev.autocast(st.device, cfg.amp):
        fake, recon = _split(st.G_train(z), n)  # one pass through G (and DDP) for both
        lg, stats_g = loss.g_loss(critic, fake)
        if cfg.recon_weight > 0:
            l1 = anchor_l1(recon.float(), real, cfg.recon_size)
            stats_g["g_recon_l1"] = float(l1.detach())
            lg = lg + cfg.recon_weight * l1
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
    imgs = st.ema.model(st.fixed_latents.to(st.device)).float().clamp(-1, 1).cpu()
    nrow = max(1, int(math.sqrt(len(imgs))))
    path = st.out / "grids" / f"{name}.png"
    save_image_grid(imgs, path, nrow=nrow)
    if writer is not None:
        writer.add_image("samples/ema_fixed_latents", make_grid((imgs + 1) / 2, nrow=nrow), st.step)
    return path


def _evaluate(st: GANState, writer) -> dict[str, float]:
    """The judge's and the step-1 classifier's figures of the EMA generator (rank 0); a metrics row."""
    g = st.ema.model
    gen = torch.Generator().manual_seed(st.cfg.seed + 1)  # the same latents at every evaluation

    def sample(b: int) -> torch.Tensor:
        z, _ = st.gmm.sample(b, gen)
        with dev.autocast(st.device, st.cfg.amp):
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
    st.metrics.append(m)  # rewritten atomically: a kill never leaves half a row
    console.print(
        f"gan step {st.step}: judge FD {m['judge_fd']:.4g}, KID {m['judge_kid_mean']:.4g} "
        f"+- {m['judge_kid_std']:.2g}, precision {m['judge_precision']:.2f}, recall {m['judge_recall']:.2f}"
        f" | step-1 FCD {m['fcd']:.4g}"
    )
    if writer is not None:
        for k in ("judge_fd", "judge_kid_mean", "judge_precision", "judge_recall", "fcd", "fck"):
            writer.add_scalar(f"metrics/{k}", m[k], st.step)
    return m


def _evaluate_and_keep_best(st: GANState, writer) -> None:
    """Evaluate on rank 0; every rank learns the judge's FD, and a better generator goes to ``best.pt``."""
    fd = _evaluate(st, writer)["judge_fd"] if dev.is_main() else None
    fd = dev.broadcast_object(fd)
    if fd < st.best_judge_fd:
        st.best_judge_fd, st.best_step = fd, st.step
        save_state(st, st.out / "best.pt")


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


def _start(st: GANState) -> None:
    """Resume from ``last.pt``; or score the starting generator (a candidate too: best.pt never ends
    worse than what step 3 started from) and save it as the first good state to fall back to."""
    out = st.out
    if (out / "last.pt").is_file():
        load_state(st, out / "last.pt")
        if (out / "best.pt").is_file():  # best.pt may be newer than last.pt: keep its record
            best = load_checkpoint(out / "best.pt")
            if float(best.get("best_judge_fd", math.inf)) < st.best_judge_fd:
                st.best_judge_fd, st.best_step = float(best["best_judge_fd"]), int(best["best_step"])
        console.print(f"gan: resumed from last.pt at step {st.step}")
        return
    st.metrics.truncate(-1)  # rows of a start killed before its first last.pt
    _evaluate_and_keep_best(st, None)
    save_state(st, out / "last.pt")


def _train(s: Session, st: GANState, on_step: Callable[[int], None] | None) -> None:
    """Generator steps to ``cfg.steps``: losses to TensorBoard, grids, evaluations, checkpoints."""
    cfg, out, data = st.cfg, st.out, _data_iter(st)
    with progress(s.main, transient=True) as bar:
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
                s.scalars(stats, st.step, prefix="loss/")
                info = " ".join(f"{k} {v:.3g}" for k, v in stats.items() if k in ("d_loss", "g_loss"))
                bar.update(task, info=info)
            if st.step % cfg.sample_every == 0 and s.main:
                _snapshot_grid(st, s.writer, f"step-{st.step:07d}")
            if st.step % cfg.metrics_every == 0 or st.step == cfg.steps:
                _evaluate_and_keep_best(st, s.writer)
            if st.step % cfg.checkpoint_every == 0 or st.step == cfg.steps:
                save_state(st, out / "last.pt")
            bar.update(task, completed=st.step)
            if on_step is not None:
                on_step(st.step)


def _finish(s: Session, st: GANState) -> dict:
    """final.pt, the sample grid of the kept generator, summary.json and done.json (rank 0)."""
    out, summary = st.out, None
    save_state(st, out / "final.pt")
    if s.main:
        grid = _snapshot_grid(st, None, "final")
        kept = _kept(st, st.metrics.rows)
        if kept["step"] != st.step:  # samples.png shows what `poke sample` (best.pt by default) gives
            st.ema.load_state_dict(load_checkpoint(out / "best.pt")["ema"])
            grid = _snapshot_grid(st, None, f"best-step-{kept['step']:07d}")
        atomic_write_bytes(out / "samples.png", grid.read_bytes())
        summary = {
            "steps": st.step,
            "loss": st.cfg.loss.name,
            "final_metrics": st.metrics.rows[-1] if st.metrics.rows else {},
            "best_judge_fd": st.best_judge_fd,
            "best_step": kept["step"],
            "kept": kept,
            "nan_events": st.nan_events,
            "lr_scale": st.lr_scale,
            "seconds_this_session": s.seconds(),
            "sample_grid": str(out / "samples.png"),
            "final_checkpoint": str(out / "final.pt"),
            "best_checkpoint": str(out / "best.pt"),
        }
        atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    return s.finish(dev.broadcast_object(summary))


def run_gan(
    cfg: GANConfig,
    run: RunDir | Path | str,
    *,
    resume: bool = False,
    on_step: Callable[[int], None] | None = None,
    scratch_args: dict | None = None,
) -> dict:
    """Train step 3 in ``RUN/gan/``; with ``resume`` continues from ``last.pt``; writes ``done.json`` last.

    ``on_step(step)`` is called after every generator step (progress hooks; tests inject failures).
    ``scratch_args``: the generator ``from_scratch`` builds (:func:`gan_setup.scratch_generator_args`).
    Under torchrun: G and the critic train under DDP on sharded data; rank 0 evaluates, draws and saves.
    """
    cfg.validate()
    s = open_session("gan", cfg, run, resume=resume)
    if s.done:
        return s.done_summary()
    st = build_state(s.run, cfg, scratch_args, device=s.device)
    st.metrics = s.metrics
    _start(st)
    s.open_writer(purge_step=st.step)
    try:
        _train(s, st, on_step)
    finally:
        s.close()
    return _finish(s, st)

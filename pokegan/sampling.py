"""Images from a finished run: GMM latents through the EMA generator, as grids, PNGs and a GIF.

Everything here works from the run directory alone: the generator is rebuilt from the arguments stored
in the GAN checkpoint (``gan/best.pt`` by default: the best EMA generator under the yardstick, the
step-2 generator itself (step 0) included, so sampling never gets worse than step 3 started from; else
``final.pt``, else ``last.pt``; ``--checkpoint final|last`` picks those), and the mixture is ``gmm/gmm.pt``. ``poke sample`` is the command on top.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor, nn

from pokedata.errors import UserError
from pokedata.log import console
from pokedata.store import atomic_writer
from pokegan.checkpoint import load_checkpoint
from pokegan.gmm import GaussianMixture, resolve_device
from pokegan.models.generator import Generator, GeneratorArgs
from pokegan.viz import save_image_grid


@dataclass
class SampleConfig:
    run: Path
    n: int = 64
    grid: Path | None = None  # default: RUN/samples/grid-seed<S>.png when neither grid nor out is given
    out: Path | None = None  # a folder of individual PNGs
    seed: int = 0
    interpolate: int = 0  # keyframes of a latent-interpolation GIF (0 = none)
    frames_between: int = 12
    checkpoint: str = "best"  # "best" (falls back to final, last) | "final" | "last"
    batch_size: int = 64
    device: str = "auto"

    def validate(self) -> SampleConfig:
        if self.n < 1:
            raise UserError(f"--n {self.n} must be >= 1", hint="e.g. --n 64")
        if self.interpolate == 1 or self.interpolate < 0:
            raise UserError(
                f"--interpolate {self.interpolate} needs at least 2 keyframes", hint="e.g. --interpolate 6"
            )
        if self.checkpoint not in ("final", "best", "last"):
            raise UserError(
                f"--checkpoint {self.checkpoint!r} must be final, best or last", hint="--checkpoint final"
            )
        if not Path(self.run).is_dir():
            raise UserError(
                f"--run {self.run} is not a directory", hint="pass a run directory made by `poke train`"
            )
        return self


def gan_checkpoint_path(run_dir: Path, which: str = "best") -> Path:
    """The GAN checkpoint to sample from: ``best`` falls back to ``final``, ``final`` to ``last``."""
    gan = Path(run_dir) / "gan"
    order = {
        "final": ["final.pt", "last.pt"],
        "best": ["best.pt", "final.pt", "last.pt"],
        "last": ["last.pt"],
    }[which]
    for name in order:
        if (gan / name).is_file():
            return gan / name
    raise UserError(
        f"no GAN checkpoint ({' or '.join(order)}) in {gan}",
        hint="train step 3 first: `poke train gan --run RUN` (or `poke train all`)",
    )


def generator_from_state(state: dict, *, ema: bool = True) -> nn.Module:
    """Rebuild the (EMA) generator from a GAN checkpoint's state dict alone."""

    args = GeneratorArgs(**state["model_args"]["generator"])
    g = Generator(args)
    g.load_state_dict(state["ema"]["model"] if ema else state["generator"])
    return g.eval().requires_grad_(False)


def load_run_sampler(run_dir: Path, which: str = "best", device: torch.device | None = None):
    """(EMA generator on ``device``, fitted GaussianMixture, checkpoint state) of a run."""

    state = load_checkpoint(gan_checkpoint_path(run_dir, which))
    g = generator_from_state(state).to(device or "cpu")
    gmm = GaussianMixture.load(Path(run_dir) / "gmm" / "gmm.pt")
    return g, gmm, state


@torch.no_grad()
def generate(g: nn.Module, z: Tensor, batch_size: int = 64) -> Tensor:
    """Images ``[N, 3, H, W]`` in [-1, 1] (CPU float32) from latents ``[N, D]``, in batches."""
    dev = next(g.parameters()).device
    out = [g(z[i : i + batch_size].to(dev)).float().clamp(-1, 1).cpu() for i in range(0, len(z), batch_size)]
    return torch.cat(out)


def to_uint8_hwc(x: Tensor) -> Tensor:
    """``[..., 3, H, W]`` in [-1, 1] -> ``[..., H, W, 3]`` uint8."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).movedim(-3, -1)


def save_pngs(images: Tensor, folder: Path, prefix: str = "sample") -> list[Path]:

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, arr in enumerate(to_uint8_hwc(images).numpy()):
        p = folder / f"{prefix}-{i:05d}.png"
        with atomic_writer(p) as fh:
            Image.fromarray(arr).save(fh, format="PNG")
        paths.append(p)
    return paths


def slerp(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    """Spherical interpolation between rows of ``a`` and ``b`` ``[D]`` at times ``t [T]`` -> ``[T, D]``.

    Falls back to linear interpolation when the vectors are (nearly) parallel. GMM latents are not on a
    sphere, so norms are interpolated linearly and directions spherically.
    """
    na, nb = a.norm(), b.norm()
    ua, ub = a / na, b / nb
    omega = torch.arccos((ua * ub).sum().clamp(-1 + 1e-7, 1 - 1e-7))
    t = t[:, None]
    if omega.abs() < 1e-4:
        direction = (1 - t) * ua + t * ub
    else:
        direction = (torch.sin((1 - t) * omega) * ua + torch.sin(t * omega) * ub) / torch.sin(omega)
    return direction * ((1 - t) * na + t * nb)


def interpolation_latents(keys: Tensor, frames_between: int) -> Tensor:
    """A closed loop through keyframes ``[K, D]``: ``[K * frames_between, D]``."""
    t = torch.arange(frames_between, dtype=keys.dtype) / frames_between
    k = len(keys)
    return torch.cat([slerp(keys[i], keys[(i + 1) % k], t) for i in range(k)])


def save_gif(frames: Tensor, path: Path, duration_ms: int = 80, scale: int = 1) -> Path:
    """Frames ``[T, 3, H, W]`` in [-1, 1] -> an animated, looping GIF (written atomically)."""

    imgs = [Image.fromarray(a) for a in to_uint8_hwc(frames).numpy()]
    if scale > 1:
        imgs = [im.resize((im.width * scale, im.height * scale), Image.NEAREST) for im in imgs]
    with atomic_writer(path) as fh:
        imgs[0].save(fh, format="GIF", save_all=True, append_images=imgs[1:], duration=duration_ms, loop=0)
    return path


def run_sample(cfg: SampleConfig) -> dict[str, object]:
    """``poke sample``: write a grid and/or PNGs and/or an interpolation GIF; returns what was written."""

    cfg.validate()
    device = resolve_device(cfg.device)
    g, gmm, state = load_run_sampler(Path(cfg.run), cfg.checkpoint, device)
    gen = torch.Generator().manual_seed(cfg.seed)
    z, _ = gmm.sample(cfg.n, gen)
    images = generate(g, z, cfg.batch_size)
    written: dict[str, object] = {"checkpoint_step": state.get("step"), "n": cfg.n}
    grid = cfg.grid
    if grid is None and cfg.out is None:
        grid = Path(cfg.run) / "samples" / f"grid-seed{cfg.seed}.png"
    if grid is not None:
        save_image_grid(images, Path(grid), nrow=max(1, int(math.ceil(math.sqrt(cfg.n)))))
        written["grid"] = str(grid)
    if cfg.out is not None:
        written["pngs"] = len(save_pngs(images, Path(cfg.out)))
        written["out"] = str(cfg.out)
    if cfg.interpolate:
        keys, _ = gmm.sample(cfg.interpolate, gen)
        frames = generate(g, interpolation_latents(keys, cfg.frames_between), cfg.batch_size)
        base = Path(cfg.out) if cfg.out is not None else Path(cfg.run) / "samples"
        gif = save_gif(
            frames, base / f"interpolation-seed{cfg.seed}.gif", scale=max(1, 128 // frames.shape[-1])
        )
        written["gif"] = str(gif)
    for key in ("grid", "out", "gif"):
        if key in written:
            console.print(f"[green]wrote[/] {key}: {written[key]}")
    return written

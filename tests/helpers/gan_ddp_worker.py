"""One torchrun worker of the GAN / ProGAN DDP test (tests/test_gan_ddp.py).

    python -m torch.distributed.run --standalone --nproc_per_node=2 tests/helpers/gan_ddp_worker.py \\
        REPORT_DIR GAN_RUN PROGAN_MANIFEST PROGAN_OUT PROGAN_CONFIG

Every rank does, in order:

1. ``grads``: one critic step of the multi-scale WGAN-GP (the gradient penalty's double backward) through
   the DDP critic and one generator step through the DDP generator, each rank on its own half-batch; the
   averaged gradients are compared with a single-process computation of both halves on plain copies
   (same weights, same penalty draws), whose mean is what the replicas must hold. Max differences go to
   the report.
2. ``poke train gan --run GAN_RUN --preset tiny ...`` through the real CLI;
3. ``poke train progan --out PROGAN_OUT --manifest PROGAN_MANIFEST --config PROGAN_CONFIG --fade-in``.

For 2 and 3 an audit hook (:func:`sys.addaudithook`) records every file this rank opens for writing
under the run directories, and the G and D each step trained are saved to ``REPORT_DIR/rank-R-<step>.pt``
so the test can compare the replicas with each other and with what rank 0 saved.
``REPORT_DIR/rank-R.json`` holds ``{"rank", "world", "grads": {...}, "writes": {step: [paths]}}``.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

from tests.helpers.write_audit import write_audit


def _grads(module) -> list:
    return [p.grad.detach().clone() for p in module.parameters() if p.grad is not None]


def check_gradients() -> dict[str, float]:
    """Max |DDP gradient - mean of the single-process gradients of both halves| for D and G."""
    import torch

    from pokegan import device as dev
    from pokegan.losses import LossConfig, make_loss
    from pokegan.models.discriminator import DiscriminatorArgs, build_discriminator, image_pyramid
    from pokegan.models.generator import Generator, GeneratorArgs
    from pokegan.steps.gan_setup import GeneratorView

    torch.manual_seed(0)  # the same initial weights on both ranks (and in the reference)
    g = Generator(GeneratorArgs(image_size=16, z_dim=8, channel_base=256, max_channels=16, min_channels=8))
    d = build_discriminator(DiscriminatorArgs(image_size=16, kind="msg", base_channels=8, max_channels=16))
    loss = make_loss(LossConfig(name="wgan-gp-msg", gp_weight=10.0))
    scales = [int(t.shape[-1]) for t in g.forward_multiscale(torch.zeros(2, 8))]
    halves = []
    for h in range(2):  # each rank's data: 4 real images and 4 latents
        gen = torch.Generator().manual_seed(100 + h)
        halves.append((torch.rand(4, 3, 16, 16, generator=gen) * 2 - 1, torch.randn(4, 8, generator=gen)))
    g_ref, d_ref = copy.deepcopy(g), copy.deepcopy(d)
    cpu = torch.device("cpu")
    g_ddp = dev.data_parallel(GeneratorView(g, True), cpu)
    d_ddp = dev.data_parallel(d, cpu)

    def critic_step(critic, gen_model, half: int):
        real, z = halves[half]
        with torch.no_grad():
            fake = gen_model.forward_multiscale(z)
        torch.manual_seed(1000 + half)  # the penalty's interpolation draws
        ld, _ = loss.d_loss(critic, image_pyramid(real, scales), fake)
        ld.backward()

    def generator_step(gen_call, critic, half: int):
        lg, _ = loss.g_loss(critic, gen_call(halves[half][1]))
        lg.backward()

    critic_step(d_ddp, g, dev.rank())
    d.requires_grad_(False)  # as in the loop: the generator step's critic is frozen
    generator_step(g_ddp, d, dev.rank())
    for h in range(2):
        critic_step(d_ref, g_ref, h)
    d_ref.requires_grad_(False)
    for h in range(2):
        generator_step(lambda z: g_ref.forward_multiscale(z), d_ref, h)
    diffs = {}
    for name, ours, ref in (("D", d, d_ref), ("G", g, g_ref)):
        got, want = _grads(ours), [t / 2 for t in _grads(ref)]
        assert len(got) == len(want) > 0, (name, len(got), len(want))
        diffs[name] = max(float((a - b).abs().max()) for a, b in zip(got, want, strict=True))
        diffs[f"{name}_scale"] = max(float(b.abs().max()) for b in want)
    return diffs


def main(argv: list[str]) -> None:
    import torch

    torch.set_num_threads(1)
    report_dir, gan_run, manifest, progan_out, progan_config = (Path(a).resolve() for a in argv)
    from pokegan import device as dev

    dev.init_distributed()
    grads = check_gradients()
    prefixes = {"gan": str(gan_run), "progan": str(progan_out)}
    writes: dict[str, list[str]] = {}
    current = {"step": "startup"}

    audit = write_audit(prefixes.get, writes, current)

    import pokegan.progan.train as progan_mod
    import pokegan.steps.gan as gan_mod

    states: dict = {}
    build_state, new_state = gan_mod.build_state, progan_mod.new_state

    def recording_build_state(*a, **k):
        states["gan"] = st = build_state(*a, **k)
        return st

    def recording_new_state(*a, **k):
        states["progan"] = st = new_state(*a, **k)
        return st

    gan_mod.build_state, progan_mod.new_state = recording_build_state, recording_new_state
    from typer.main import get_command

    from cli import app

    command = get_command(app)
    sys.addaudithook(audit)
    gan_args = ["--run", str(gan_run), "--preset", "tiny", "--steps", "4", "--loss", "wgan-gp-msg"]
    gan_args += ["--n-critic", "1", "--batch-size", "4", "--num-workers", "0", "--sample-every", "2"]
    gan_args += ["--metrics-every", "2", "--checkpoint-every", "2"]
    progan_args = ["--out", str(progan_out), "--manifest", str(manifest), "--config", str(progan_config)]
    commands = {"gan": ["train", "gan", *gan_args], "progan": ["train", "progan", *progan_args, "--fade-in"]}
    for step, args in commands.items():
        current["step"] = step
        command.main(args=args, prog_name="poke", standalone_mode=False)
    current["step"] = "report"
    r = dev.rank()
    for step, st in states.items():
        weights = {f"G.{k}": v for k, v in st.G.state_dict().items()}
        weights.update({f"D.{k}": v for k, v in st.D.state_dict().items()})
        torch.save({k: v.detach().clone() for k, v in weights.items()}, report_dir / f"rank-{r}-{step}.pt")
    report = {"rank": r, "world": dev.world_size(), "grads": grads, "writes": writes}
    (report_dir / f"rank-{r}.json").write_text(json.dumps(report, indent=1))
    dev.barrier()
    dev.cleanup_distributed()


if __name__ == "__main__":
    main(sys.argv[1:])

"""One torchrun worker of the DDP test: runs ``poke train classify / embed / pretrain`` through the real CLI.

    python -m torch.distributed.run --standalone --nproc_per_node=2 tests/helpers/ddp_worker.py \\
        MANIFEST_DIR RUN_DIR REPORT_DIR [CLI options of classify ...]

Every rank runs the same three commands (``train classify``, ``train embed``, ``train pretrain``), as a user
would under torchrun. Two test-only observers, neither of which changes what the steps do:

- an audit hook (:func:`sys.addaudithook`) records every file this rank opens for writing or creates under
  the run directory, so the test can check that only rank 0 writes checkpoints, logs and pictures;
- the classifier and generator instances each step builds are recorded (wrapping the factory the step
  calls), and after training this rank saves their final weights to ``REPORT_DIR/rank-R-<step>.pt``, so the
  test can compare the replicas.

``REPORT_DIR/rank-R.json`` then holds ``{"rank", "world", "writes": {step: [paths]}, "steps": [...]}``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.helpers.write_audit import write_audit


def main(argv: list[str]) -> None:
    import torch

    torch.set_num_threads(1)
    manifest, run_dir, report_dir, *classify_args = argv
    run_dir, report_dir = Path(run_dir).resolve(), Path(report_dir)
    prefix = str(run_dir)
    writes: dict[str, list[str]] = {}
    current = {"step": "startup"}

    audit = write_audit(lambda _step: prefix, writes, current)

    built: dict[str, torch.nn.Module] = {}
    import pokegan.steps.classify as classify_mod
    import pokegan.steps.pretrain as pretrain_mod

    build_model = classify_mod.build_model

    def recording_build_model(cfg, n_out):
        built["classify"] = model = build_model(cfg, n_out)
        return model

    build_generator = pretrain_mod.build_generator

    def recording_build_generator(cfg, device):
        built["pretrain"] = g = build_generator(cfg, device)
        return g

    classify_mod.build_model = recording_build_model
    pretrain_mod.build_generator = recording_build_generator

    from typer.main import get_command

    from cli import app
    from pokegan import device as dev

    command = get_command(app)
    sys.addaudithook(audit)
    commands = {
        "classify": ["train", "classify", "--manifest", manifest, "--out", str(run_dir), *classify_args],
        "embed": ["train", "embed", "--run", str(run_dir), "--batch-size", "5", "--num-workers", "0"],
        "pretrain": ["train", "pretrain", "--run", str(run_dir), "--preset", "tiny", "--epochs", "2"],
    }
    for step, args in commands.items():
        current["step"] = step
        command.main(args=args, prog_name="poke", standalone_mode=False)
    current["step"] = "report"
    r = dev.rank()
    for step, model in built.items():
        torch.save(
            {k: v.detach().clone() for k, v in model.state_dict().items()}, report_dir / f"rank-{r}-{step}.pt"
        )
    report = {"rank": r, "world": dev.world_size(), "writes": writes, "steps": list(commands)}
    (report_dir / f"rank-{r}.json").write_text(json.dumps(report, indent=1))
    dev.barrier()
    dev.cleanup_distributed()


if __name__ == "__main__":
    main(sys.argv[1:])

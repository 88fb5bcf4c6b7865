"""Checkpoints: atomic saves, loads with clear errors, RNG state capture, compatibility checks.

A training checkpoint (``classifier/last.pt``, ``pretrain/last.pt``, ...) is one dict::

    kind            "poke-classifier-1" | "poke-pretrain-1" | ...
    model_args      enough to rebuild the model(s) alone (e.g. {"num_classes": 799} or {"generator": {...}})
    model           state dict (pretrain: "generator")
    optimizer       optimizer state dict
    schedule        {"base_lr", "warmup_steps", "total_steps", "min_ratio"}
    scaler          grad-scaler state (None with bf16 autocast / CPU)
    step, epoch, batch_in_epoch
    rng             python, numpy, torch, cuda generator states
    config          the resolved step config (config_to_dict: the keys of its TOML section)
    classes         the class list, manifest_sha256   (a checkpoint from another manifest is refused)

Writes go to a temp file beside the target, are fsync'ed and renamed: a kill leaves the old checkpoint or
the new one, never half of one; a Ctrl-C waits for the write in progress to finish.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pokedata.errors import UserError
from pokedata.interrupt import deferred_interrupt
from pokedata.store import atomic_writer
from pokegan import device as dev
from pokegan.config import config_to_dict


def save_checkpoint(path: Path | str, state: Any) -> Path:
    """Save ``state`` (a checkpoint dict, or any object ``torch.save`` takes) atomically: temp file, fsync,
    rename. A first Ctrl-C waits for the save to finish (:func:`deferred_interrupt`), so the step stops
    with this checkpoint on disk rather than with a torch error from inside its zip writer."""
    path = Path(path)
    with deferred_interrupt(), atomic_writer(path) as fh:
        torch.save(state, fh)
    return path


def save_on_main(path: Path | str, make_state) -> None:
    """Rank 0 saves ``make_state()`` (the replicas are equal); the other ranks build nothing and go on."""
    if dev.is_main():
        save_checkpoint(path, make_state())


def provenance(cfg: Any, classes: list[str], manifest_sha256: str) -> dict[str, Any]:
    """The keys every training checkpoint ends with: RNG states, the resolved config, classes, manifest."""
    return {
        "rng": rng_state(),
        "config": config_to_dict(cfg),  # inline configs flat: the keys of the TOML section
        "classes": list(classes),
        "manifest_sha256": manifest_sha256,
    }


def load_checkpoint(path: Path | str, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint saved by :func:`save_checkpoint`; a missing or corrupt file is a UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(
            f"checkpoint {path} does not exist", hint="check the --run path, or train that step first"
        )
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means the file is unusable
        raise UserError(
            f"checkpoint {path} could not be read ({type(exc).__name__}: {exc})",
            hint="it is corrupt or from another program: delete it to restart that step",
        ) from None
    if not isinstance(state, dict):
        raise UserError(f"checkpoint {path} is not a poke checkpoint", hint="delete it to restart that step")
    return state


def check_compatible(
    state: dict[str, Any],
    path: Path | str,
    *,
    manifest_sha256: str,
    classes: list[str],
    kind: str | None = None,
) -> None:
    """Refuse a checkpoint from another step kind, manifest or class list, naming what differs."""
    if kind is not None and state.get("kind") != kind:
        raise UserError(
            f"{path} is a {state.get('kind', 'unknown')!r} checkpoint, not {kind!r}",
            hint="point --run at the right run directory",
        )
    saved_sha = state.get("manifest_sha256")
    if saved_sha and saved_sha != manifest_sha256:
        raise UserError(
            f"{path} was trained on another manifest (sha256 {str(saved_sha)[:12]}..., this one {manifest_sha256[:12]}...)",
            hint="use a new run directory (--out) for a new or rebuilt manifest",
        )
    saved_classes = list(state.get("classes") or [])
    if saved_classes and saved_classes != list(classes):
        raise UserError(
            f"{path} was trained on {len(saved_classes)} classes, the manifest has {len(classes)}"
            if len(saved_classes) != len(classes)
            else f"{path} was trained on a different class list",
            hint="use a new run directory (--out) for a different class list",
        )


def rng_state() -> dict[str, Any]:
    """Python, numpy, torch and CUDA generator states."""
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_training_state(state: dict[str, Any], optimizer, scaler) -> None:
    """Resume bookkeeping shared by the steps: optimizer, grad scaler and RNG states from a checkpoint."""
    optimizer.load_state_dict(state["optimizer"])
    scaler.load_state_dict(state["scaler"])
    set_rng_state(state["rng"])


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module under DDP and ``torch.compile`` wrappers (its state dict has clean keys)."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, torch.nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


__all__ = [
    "check_compatible",
    "load_checkpoint",
    "provenance",
    "rng_state",
    "save_checkpoint",
    "save_on_main",
    "set_rng_state",
    "unwrap",
]

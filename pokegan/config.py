"""Step configs: one dataclass per step, loaded from presets, a TOML file and CLI overrides (in that order).

A config file may hold every step, one section each::

    [data]              # DataConfig: shared by every step that reads images
    image_size = 64
    [classify]          # ClassifyConfig (step 1)
    epochs = 30
    [embed]             # EmbedConfig
    [pretrain]          # PretrainConfig (step 2)
    [gmm]  [gan]  [progan]   # step 3 and the progressive DCGAN (their dataclasses live beside their code)

``load_step_config(ClassifyConfig, "classify", config_file=..., preset="tiny", overrides={...})`` resolves
one step. A config dataclass with a ``data: DataConfig`` field gets the ``[data]`` section there.
Unknown keys are refused with a :class:`UserError` naming the key and the section. ``config_to_toml``
writes a resolved config back in the same format, so ``--config RUN/classifier/config.toml`` reproduces it.

Presets (``tiny``, ``small``, ``default``) are one static table, every step's section in it:
:mod:`pokegan.presets`.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import math
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pokedata.errors import UserError
from pokegan.presets import PRESET_NAMES, PRESETS

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]


# ---- command-line options, declared on the fields -------------------------------------------------------
@dataclass(frozen=True)
class CliOption:
    """How a config field appears on the command line (``pokegan.commands.options.config_options``)."""

    help: str
    flag: str = ""  # default: --field-name (a bool: --field-name/--no-field-name)
    parse: Callable[[str, str], Any] | None = None  # (text, flag) -> value: the option is then text
    path: bool = False  # a str field holding a file path: the option is a path (its text is stored)


def cli(
    help: str, flag: str = "", parse: Callable[[str, str], Any] | None = None, path: bool = False
) -> dict[str, CliOption]:
    """Field metadata making the field a command-line option: ``field(default=..., metadata=cli("..."))``."""
    return {"cli": CliOption(help, flag, parse, path)}


# ---- nested configs, written flat ------------------------------------------------------------------------
def inline(factory: Callable[[], Any]) -> Any:
    """A nested config whose keys sit in its parent's section: ``loss: LossConfig = inline(LossConfig)``.

    Each field is declared once, on the nested dataclass, and still reads and writes as a key of the
    parent's section (TOML, CLI, checkpoints), so a file or checkpoint written before the nesting loads
    unchanged.
    """
    return field(default_factory=factory, metadata={"inline": True})


@dataclass(frozen=True)
class SectionKey:
    """Where a section's key lives: the field, its declared type, the attributes leading to its owner."""

    field: dataclasses.Field
    type: Any
    path: tuple[str, ...] = ()  # from the section's config to the owner (inline configs)

    def owner_of(self, cfg: Any) -> Any:
        return functools.reduce(getattr, self.path, cfg)


@functools.cache  # a class's keys never change; get_type_hints is slow and `poke --help` asks ~70 times
def section_keys(cls: type) -> dict[str, SectionKey]:
    """The keys of ``cls``'s section in declaration order, inline configs' keys in place of the config.

    A key is the field's name, or ``metadata["key"]`` where the field is called otherwise in the section
    (``LossConfig.name`` is ``loss`` in ``[gan]``). The dict is shared: read it, never change it.
    """
    keys: dict[str, SectionKey] = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.metadata.get("inline"):
            inner = {
                k: SectionKey(v.field, v.type, (f.name, *v.path))
                for k, v in section_keys(hints[f.name]).items()
            }
        else:
            inner = {f.metadata.get("key", f.name): SectionKey(f, hints[f.name])}
        clash = set(inner) & set(keys)
        if clash:
            raise TypeError(f"{cls.__name__}: key {sorted(clash)[0]!r} is declared twice")
        keys.update(inner)
    return keys


def field_of(cls: type, key: str) -> SectionKey:
    """The field behind a key of ``cls``'s section: ``"lr"``, ``"loss"`` (inline), ``"data.batch_size"``."""
    *tables, name = key.split(".")
    for table in tables:
        cls = section_keys(cls)[table].type
    keys = section_keys(cls)
    if name not in keys:
        raise TypeError(f"{cls.__name__} has no key {name!r}")
    return keys[name]


def section_items(cfg: Any) -> list[tuple[str, Any]]:
    """``(key, value)`` of every key of the config's section (a nested table's value is its dataclass)."""
    return [(k, getattr(sk.owner_of(cfg), sk.field.name)) for k, sk in section_keys(type(cfg)).items()]


def parse_numbers(value: str, flag: str, kind: type = float) -> list:
    """``"1,1,0.5,0"`` -> ``[1.0, 1.0, 0.5, 0.0]`` (``kind`` int: ``"4,8"`` -> ``[4, 8]``); a clear error
    naming the flag otherwise."""
    try:
        return [kind(v) for v in value.split(",") if v.strip()]
    except ValueError:
        what, e_g = ("integers", "4,8,16") if kind is int else ("numbers", "1,1,1,1")
        raise UserError(
            f"{flag} {value!r} is not a comma-separated list of {what}", hint=f"e.g. {flag} {e_g}"
        ) from None


def parse_floats(value: str, flag: str) -> list[float]:
    return parse_numbers(value, flag, float)


def parse_ints(value: str, flag: str) -> list[int]:
    return parse_numbers(value, flag, int)


# options several steps share (one help text each)
EPOCHS = cli("Passes over the train split.")
LR = cli("Peak learning rate (after the linear warm-up; cosine decay follows).")
GRAD_ACCUM = cli("Micro-batches accumulated per optimizer step.")
COMPILE = cli("torch.compile the model (CUDA only).")
STOP_AFTER = cli("Stop (checkpoint saved) after N optimizer steps; continue later with --resume.")
DEVICE = cli("auto (CUDA when available, the torchrun local rank), cpu, cuda or cuda:N.")
SEED = cli("Seed of the model initialisation and the data order.")
NUM_WORKERS = cli("DataLoader processes decoding JPEGs (0 = in the main process).")


# ---- the shared data section ---------------------------------------------------------------------------
@dataclass
class DataConfig:
    """``[data]``: how images are read, sized, augmented and batched."""

    # square side in px (a power of two: 32 .. 256)
    image_size: int = field(
        default=64, metadata=cli("Square image side in px, a power of two (32, 64, 128, 256).")
    )
    # per process (per GPU under torchrun)
    batch_size: int = field(default=64, metadata=cli(r"Images per batch and process (\[data] batch_size)."))
    num_workers: int = field(default=2, metadata=NUM_WORKERS)
    augment: bool = True  # horizontal flip + conservative random resized crop (training only)
    crop_scale: float = 0.85  # smallest area fraction kept by the random resized crop (1.0 = no crop)
    # decode once into a packed uint8 memmap per resolution (pokegan.cache)
    use_cache: bool = field(
        default=True,
        metadata=cli("Read images from the packed uint8 cache (built on first use).", "--cache/--no-cache"),
    )
    cache_dir: str = ""  # where packed caches live ("" = DATA_ROOT/cache/packed)
    cache_on_gpu: bool = True  # keep the packed cache in GPU memory when it fits (augmentation there too)
    data_root: str = ""  # dataset directory the manifest paths are relative to ("" = from stats.json)
    # use at most this many train images, a seeded class-stratified subset (0 = all)
    max_images: int = field(
        default=0, metadata=cli("Train on a seeded, class-stratified subset of N images.")
    )
    # class-balanced sampler (each class equally likely per draw)
    balanced: bool = field(default=False, metadata=cli("Class-balanced sampling of the train split."))
    seed: int = 0

    def validate(self) -> DataConfig:
        s = self.image_size
        if s < 16 or s > 512 or s & (s - 1):
            raise UserError(
                f"[data] image_size {s} must be a power of two in 16..512", hint="e.g. --image-size 64"
            )
        if self.batch_size < 2:
            raise UserError(
                f"[data] batch_size {self.batch_size} must be >= 2 (the embedding BatchNorm needs a batch)",
                hint="e.g. --batch-size 64",
            )
        if self.num_workers < 0 or self.max_images < 0:
            raise UserError("[data] num_workers and max_images must be >= 0", hint="0 means none / all")
        if not 0.3 <= self.crop_scale <= 1.0:
            raise UserError(f"[data] crop_scale {self.crop_scale} must be in [0.3, 1]", hint="e.g. 0.85")
        return self


# ---- steps 1 and 2 ---------------------------------------------------------------------------------------
TASKS = ("auto", "classes", "rotation")


def _check_train(cfg: Any, section: str) -> None:
    if cfg.epochs < 1:
        raise UserError(f"[{section}] epochs {cfg.epochs} must be >= 1", hint="e.g. --epochs 10")
    if cfg.lr <= 0 or cfg.weight_decay < 0:
        raise UserError(f"[{section}] lr must be > 0 and weight_decay >= 0", hint="e.g. --lr 1e-3")
    if cfg.warmup_steps < 0 or cfg.grad_accum < 1:
        raise UserError(
            f"[{section}] warmup_steps must be >= 0 and grad_accum >= 1", hint="e.g. --grad-accum 1"
        )
    if not 0.0 <= cfg.min_lr_ratio <= 1.0:
        raise UserError(f"[{section}] min_lr_ratio {cfg.min_lr_ratio} must be in [0, 1]", hint="e.g. 0.01")
    if cfg.checkpoint_every < 0 or cfg.stop_after_steps < 0 or cfg.log_every < 1:
        raise UserError(
            f"[{section}] checkpoint_every must be >= 0 and log_every >= 1", hint="e.g. 500 and 20"
        )


@dataclass
class ClassifyConfig:
    """``[classify]``: step 1, the ResNet-34 embedding classifier."""

    # classes | rotation (RotNet pretext) | auto (rotation when all images share one class)
    task: str = field(
        default="auto", metadata=cli("classes, rotation (RotNet pretext) or auto (rotation for one class).")
    )
    epochs: int = field(default=30, metadata=EPOCHS)
    optimizer: str = field(default="adamw", metadata=cli("adamw (default) or sgd (Nesterov momentum)."))
    lr: float = field(default=1e-3, metadata=LR)  # scaled by nothing: set it for your batch
    weight_decay: float = 0.05
    momentum: float = 0.9  # sgd only
    warmup_steps: int = 500  # optimizer steps of linear warm-up, then cosine to min_lr_ratio * lr
    min_lr_ratio: float = 0.01
    label_smoothing: float = field(default=0.1, metadata=cli("Cross-entropy label smoothing, 0..1."))
    grad_accum: int = field(default=1, metadata=GRAD_ACCUM)
    grad_clip: float = 0.0  # max gradient norm (0 = off)
    amp: bool = True  # bf16 autocast on CUDA (ignored on CPU)
    channels_last: bool = True
    compile: bool = field(default=False, metadata=COMPILE)
    # a local ResNet-34 (torchvision) or classifier state dict to start from
    init_weights: str = field(
        default="", metadata=cli("Local ResNet-34 state dict to start the body from.", path=True)
    )
    stats_images: int = 20000  # train images for the precise BatchNorm and frozen encoding statistics
    checkpoint_every: int = 0  # optimizer steps between mid-epoch checkpoints (0 = at epoch ends only)
    stop_after_steps: int = field(default=0, metadata=STOP_AFTER)
    log_every: int = 20
    worst_k: int = 10  # worst classes listed after each epoch
    device: str = field(default="auto", metadata=DEVICE)
    seed: int = field(default=0, metadata=SEED)
    data: DataConfig = field(default_factory=DataConfig)

    def validate(self) -> ClassifyConfig:
        _check_train(self, "classify")
        if self.task not in TASKS:
            raise UserError(f"--task {self.task!r} is not a task", hint=f"use one of {', '.join(TASKS)}")
        if self.optimizer not in ("adamw", "sgd"):
            raise UserError(f"--optimizer {self.optimizer!r} is not supported", hint="use adamw or sgd")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise UserError(f"--label-smoothing {self.label_smoothing} must be in [0, 1)", hint="e.g. 0.1")
        if self.init_weights and not Path(self.init_weights).is_file():
            raise UserError(
                f"--init-weights {self.init_weights} does not exist", hint="pass a local .pt/.pth file"
            )
        if self.stats_images < 2 or self.worst_k < 0 or self.grad_clip < 0:
            raise UserError(
                "[classify] stats_images >= 2, worst_k >= 0, grad_clip >= 0", hint="e.g. 20000, 10, 0"
            )
        return self


@dataclass
class EmbedConfig:
    """``[embed]``: encode every manifest image to 512-d with the frozen classifier."""

    batch_size: int = field(
        default=256, metadata=cli("Images per encoding batch (results do not depend on it).")
    )
    dtype: str = field(default="float32", metadata=cli("float32 (default) or float16 for embeddings.npy."))
    num_workers: int = field(default=2, metadata=NUM_WORKERS)
    amp: bool = True  # bf16 autocast on CUDA for the body (the statistics and normalisation stay float32)
    device: str = field(default="auto", metadata=DEVICE)
    seed: int = 0

    def validate(self) -> EmbedConfig:
        if self.batch_size < 1 or self.num_workers < 0:
            raise UserError("[embed] batch_size >= 1, num_workers >= 0", hint="e.g. 256, 2")
        if self.dtype not in ("float32", "float16"):
            raise UserError(
                f"--dtype {self.dtype!r} must be float32 or float16", hint="--dtype float16 halves the file"
            )
        return self


@dataclass
class PretrainConfig:
    """``[pretrain]``: step 2, the generator reconstructs images from their frozen-classifier embeddings."""

    epochs: int = field(default=40, metadata=EPOCHS)
    lr: float = field(default=2e-4, metadata=LR)
    betas: list[float] = field(default_factory=lambda: [0.5, 0.99])
    weight_decay: float = 0.0
    warmup_steps: int = 500
    min_lr_ratio: float = 0.05
    grad_accum: int = field(default=1, metadata=GRAD_ACCUM)
    grad_clip: float = 0.0
    layer_weights: list[float] = field(  # layer1..layer4
        default_factory=lambda: [1.0, 1.0, 1.0, 1.0],
        metadata=cli("Perceptual weights of layer1..layer4, e.g. 1,1,1,1.", parse=parse_floats),
    )
    # weight of an extra pixel L1 term (0 = perceptual only)
    pixel_l1: float = field(default=0.0, metadata=cli("Weight of an extra pixel L1 term (0 = off)."))
    # flip and crop step 2's inputs as [data] augment does for step 1. Off: a flipped or shifted sprite has
    # nearly the same embedding (cosine 0.95 / 0.86 on the gen-1 sprites), so the generator would be asked
    # to draw two different images from one vector and learns their blurred average (docs/training.md)
    augment: bool = field(
        default=False,
        metadata=cli(
            "Flip and crop step 2's inputs as [data] augment does (off: every image is reconstructed as "
            "it is, since a flip barely moves its embedding)."
        ),
    )
    g_channel_base: int = 16384  # generator channels at resolution r: clamp(base // r, min, max)
    g_max_channels: int = 512
    g_min_channels: int = 32
    g_dilate_from: int = 32  # blocks at this resolution and above use dilated convolutions
    g_dilation: int = 2
    g_upsample: str = "nearest"  # nearest | bilinear: the generator's x2 upsampling
    g_output: str = "tanh"  # tanh | linear: the generator's last activation (linear never saturates)
    grid_n: int = 8  # images in the per-epoch reconstruction grid
    amp: bool = True
    channels_last: bool = True
    compile: bool = field(default=False, metadata=COMPILE)
    checkpoint_every: int = 0  # optimizer steps between mid-epoch checkpoints (0 = at epoch ends only)
    stop_after_steps: int = field(default=0, metadata=STOP_AFTER)
    log_every: int = 20
    device: str = field(default="auto", metadata=DEVICE)
    seed: int = field(default=0, metadata=SEED)
    data: DataConfig = field(default_factory=DataConfig)

    def validate(self) -> PretrainConfig:
        _check_train(self, "pretrain")
        if (
            len(self.layer_weights) != 4
            or any(w < 0 for w in self.layer_weights)
            or sum(self.layer_weights) <= 0
        ):
            raise UserError(
                f"[pretrain] layer_weights {self.layer_weights} needs 4 weights >= 0, not all 0",
                hint="e.g. --layer-weights 1,1,1,1",
            )
        if self.pixel_l1 < 0 or self.grid_n < 1 or len(self.betas) != 2:
            raise UserError(
                "[pretrain] pixel_l1 >= 0, grid_n >= 1, betas = [b1, b2]", hint="e.g. 0, 8, [0.5, 0.99]"
            )
        if self.g_min_channels < 1 or self.g_max_channels < self.g_min_channels or self.g_dilation < 1:
            raise UserError(
                "[pretrain] g_min_channels <= g_max_channels, g_dilation >= 1", hint="e.g. 32, 512, 2"
            )
        if self.g_upsample not in ("nearest", "bilinear"):
            raise UserError(
                f"[pretrain] g_upsample {self.g_upsample!r} must be nearest or bilinear", hint="e.g. bilinear"
            )
        if self.g_output not in ("tanh", "linear"):
            raise UserError(
                f"[pretrain] g_output {self.g_output!r} must be tanh or linear", hint="e.g. linear"
            )
        return self


# ---- loading -------------------------------------------------------------------------------------------
def _coerce(value: Any, typ: Any, where: str) -> Any:
    """Check/convert one TOML or CLI value to the field's declared type."""
    origin = typing.get_origin(typ)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        if value is None:
            return None
        return _coerce(value, args[0], where)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{where} must be a list, got {value!r}", hint="write it as [a, b, ...]")
        (inner, *_) = typing.get_args(typ) or (Any,)
        return [_coerce(v, inner, where) for v in value]
    if typ is bool:
        if isinstance(value, bool):
            return value
        raise UserError(f"{where} must be true or false, got {value!r}", hint="use true / false")
    if typ is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):  # nan/inf pass every `x <= 0` check and crash the run later
                raise UserError(f"{where} must be a finite number, got {value!r}", hint="e.g. 0.001")
            return float(value)
        raise UserError(f"{where} must be a number, got {value!r}", hint="e.g. 0.001")
    if typ is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise UserError(f"{where} must be an integer, got {value!r}", hint="e.g. 64")
    if typ is str:
        if isinstance(value, (str, Path)):
            return str(value)
        raise UserError(f"{where} must be a string, got {value!r}", hint='quote it: key = "value"')
    return value


def apply_values(cfg: Any, values: dict[str, Any], section: str) -> Any:
    """Set ``values`` on the dataclass ``cfg`` (type-checked); an unknown key is a UserError."""
    keys = section_keys(type(cfg))
    for key, value in values.items():
        if key not in keys:
            known = ", ".join(sorted(n for n in keys if n != "data"))
            raise UserError(
                f"unknown key {key!r} in section [{section}]",
                hint=f"known keys of [{section}]: {known}",
            )
        where = keys[key]
        owner = where.owner_of(cfg)
        current = getattr(owner, where.field.name)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise UserError(f"[{section}] {key} must be a table", hint=f"write it as a [{key}] section")
            apply_values(current, value, key)
            continue
        setattr(owner, where.field.name, _coerce(value, where.type, f"[{section}] {key}"))
    return cfg


def read_config_file(path: Path | str) -> dict[str, Any]:
    """The TOML file as a dict of sections; a clear error when it is missing or malformed."""
    p = Path(path)
    if not p.is_file():
        raise UserError(
            f"--config {p} does not exist", hint="pass a TOML file with [data], [classify], ... sections"
        )
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(
            f"--config {p} is not valid TOML: {exc}", hint="fix the file (see docs/training.md)"
        ) from None
    for name, value in data.items():
        if not isinstance(value, dict):
            raise UserError(
                f"--config {p}: top-level key {name!r} is not inside a section",
                hint="put keys under [data], [classify], [embed], [pretrain], [gmm], [gan] or [progan]",
            )
    return data


def load_step_config(
    cls: type,
    section: str,
    *,
    config_file: Path | str | None = None,
    preset: str | None = None,
    overrides: dict[str, Any] | None = None,
    base: dict[str, dict[str, Any]] | None = None,
):
    """Resolve one step's config: defaults <- preset <- ``base`` <- ``[section]`` of the file <- CLI overrides.

    ``base`` holds sections inherited from earlier steps of the run (e.g. step 2 takes step 1's ``[data]``).

    ``overrides`` maps field names to values (``None`` = not given, ignored); ``data.NAME`` keys (or a
    nested ``{"data": {...}}``) go to the ``[data]`` section. The result is validated (``cfg.validate()``).
    """
    if preset is not None and preset not in PRESETS:
        raise UserError(f"--preset {preset!r} is not a preset", hint=f"use one of {', '.join(PRESETS)}")
    cfg = cls()
    has_data = any(f.name == "data" for f in dataclasses.fields(cfg)) and isinstance(
        getattr(cfg, "data", None), DataConfig
    )
    layers: list[tuple[str, dict[str, Any]]] = []
    if preset is not None:
        layers.append((f"preset {preset}", copy.deepcopy(PRESETS[preset])))  # the table stays as written
    if base:
        layers.append(("run", base))
    if config_file is not None:
        layers.append((str(config_file), read_config_file(config_file)))
    for _, sections in layers:
        if has_data and "data" in sections:
            apply_values(cfg.data, sections["data"], "data")
        if section in sections:
            apply_values(cfg, sections[section], section)
    if overrides:
        own: dict[str, Any] = {}
        data: dict[str, Any] = {}
        for key, value in overrides.items():
            if value is None:
                continue
            if key.startswith("data."):
                data[key[5:]] = value
            elif key == "data" and isinstance(value, dict):
                data.update({k: v for k, v in value.items() if v is not None})
            else:
                own[key] = value
        if data:
            if not has_data:
                raise UserError(f"[{section}] has no [data] section", hint=f"remove {', '.join(data)}")
            apply_values(cfg.data, data, "data")
        apply_values(cfg, own, section)
    if has_data:
        cfg.data.validate()
    if hasattr(cfg, "validate"):
        cfg.validate()
    return cfg


# ---- writing -------------------------------------------------------------------------------------------
def section_name(cfg_or_cls: Any) -> str:
    """``ClassifyConfig`` -> ``classify``; a class attribute ``SECTION`` wins."""
    cls = cfg_or_cls if isinstance(cfg_or_cls, type) else type(cfg_or_cls)
    return getattr(cls, "SECTION", None) or cls.__name__.removesuffix("Config").lower()


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (str, Path)):
        return json.dumps(str(v), ensure_ascii=False)  # a JSON string is a valid TOML basic string
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} to TOML")


def config_to_toml(cfg: Any, section: str | None = None) -> str:
    """The config as TOML (``[data]`` first when it has one); ``load_step_config`` reads it back."""
    section = section or section_name(cfg)
    blocks: list[str] = []
    own: list[str] = []
    for key, v in section_items(cfg):
        if dataclasses.is_dataclass(v):
            blocks.append(config_to_toml(v, key))
        elif v is not None:
            own.append(f"{key} = {_toml_value(v)}")
    blocks.append(f"[{section}]\n" + "\n".join(own) + "\n")
    return "\n".join(blocks)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A plain dict of the section's keys (for checkpoints and JSON): inline configs written flat."""
    return {
        k: config_to_dict(v) if dataclasses.is_dataclass(v) else copy.deepcopy(v)
        for k, v in section_items(cfg)
    }


def config_from_dict(cls: type, values: dict[str, Any], section: str | None = None):
    """Rebuild a config saved by :func:`config_to_dict` (e.g. from a checkpoint)."""
    return apply_values(cls(), values, section or section_name(cls))


__all__ = [
    "PRESETS",
    "TASKS",
    "ClassifyConfig",
    "EmbedConfig",
    "PretrainConfig",
    "PRESET_NAMES",
    "DataConfig",
    "apply_values",
    "config_from_dict",
    "config_to_dict",
    "config_to_toml",
    "field_of",
    "inline",
    "parse_ints",
    "section_items",
    "section_keys",
    "load_step_config",
    "read_config_file",
    "section_name",
]

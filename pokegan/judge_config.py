"""The judge's settings (:class:`JudgeConfig`), importable without torch: the ``[gan]`` config validates
its judge fields with it when ``poke train gan`` starts. The judge itself is :mod:`pokegan.judge`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from pokedata.errors import UserError

JUDGE_KIND = "poke-judge-2"  # 2: the stride-2 stem


@dataclass
class JudgeConfig:
    """How the judge is built and trained (every field but ``cache_dir`` and ``device`` is in its cache key)."""

    image_size: int = 32  # the judge sees every image at this size
    width: int = 16  # ResNet-18 channels of layer1 (features: 8 * width)
    epochs: int = 6
    batch_size: int = 64
    lr: float = 2e-3  # AdamW peak, warm-up then cosine
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    max_train_images: int = 4000  # a seeded class-stratified subset of the train split (0 = all)
    seed: int = 1234  # its own seed: not the steps' default 0
    knn_k: int = 3  # k of the precision/recall manifolds
    kid_subsets: int = 50
    kid_subset_size: int = 1000
    cache_dir: str = ""  # "" = DATA_ROOT/cache/judge
    device: str = "auto"

    def validate(self) -> JudgeConfig:
        s = self.image_size
        if s < 16 or s & (s - 1):
            raise UserError(f"judge image_size {s} must be a power of two >= 16", hint="e.g. 32")
        if self.width < 1 or self.epochs < 1 or self.batch_size < 2:
            raise UserError("judge width >= 1, epochs >= 1, batch_size >= 2", hint="e.g. 16, 6, 64")
        if self.lr <= 0 or self.weight_decay < 0 or not 0 <= self.label_smoothing < 1:
            raise UserError("judge lr > 0, weight_decay >= 0, label_smoothing in [0, 1)", hint="e.g. 2e-3")
        if self.max_train_images < 0 or self.knn_k < 1 or self.kid_subsets < 1 or self.kid_subset_size < 2:
            raise UserError("judge max_train_images >= 0, knn_k >= 1, kid subsets >= 1", hint="e.g. 4000, 3")
        return self

    def key(self) -> str:
        """A short hash of everything that changes the judge's weights."""
        fields = {k: v for k, v in asdict(self).items() if k not in ("cache_dir", "device")}
        fields.pop("knn_k"), fields.pop("kid_subsets"), fields.pop("kid_subset_size")
        fields["kind"] = JUDGE_KIND  # another architecture is another judge
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:8]


__all__ = ["JUDGE_KIND", "JudgeConfig"]

"""Step 1's model: a ResNet-34 whose pooled 512-d features pass a parameter-free, statistics-free BatchNorm.

    x [B, 3, H, W] in [-1, 1]
      -> torchvision resnet34 body (conv1 .. layer4)      [B, 512, H/32, W/32]
      -> global average pool -> flatten                  [B, 512]      ("pooled features")
      -> BatchNorm1d(512, affine=False, track_running_stats=False)     the embedding z, ~ N(0, I)
      -> Linear(512, num_classes)                         logits

That BatchNorm has no parameters and no buffers: in training and in eval mode it normalises every batch by
the batch's own statistics, which keeps the embeddings near a standard Gaussian (what step 3's Gaussian
mixture and the generator's latents expect). The catch: an embedding then depends on the rest of its batch.
For encoding (``embed``, step 2, metrics) we therefore freeze *dataset* statistics once: the mean and
variance of the pooled features over many train images (computed at the end of step 1 and saved with the
classifier). With frozen statistics set (:meth:`EmbeddingClassifier.set_frozen_stats`) ``embed`` is a pure
per-image function: the same image gives the same vector in any batch. Those statistics are what the
batch statistics estimate, so frozen-statistic embeddings match the training-time distribution.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn
from torchvision.models import resnet34

from pokedata.errors import UserError
from pokegan.checkpoint import load_checkpoint
from pokegan.device import all_reduce_sum, autocast, world_size

EMBED_DIM = 512
BN_EPS = 1e-5
CLASSIFIER_KIND = "poke-classifier-1"


class EmbeddingClassifier(nn.Module):
    def __init__(self, num_classes: int):
        super().__init__()

        if num_classes < 2:
            raise ValueError(f"num_classes {num_classes} must be >= 2")
        body = resnet34(weights=None)
        self.conv1, self.bn1, self.relu, self.maxpool = body.conv1, body.bn1, body.relu, body.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            body.layer1,
            body.layer2,
            body.layer3,
            body.layer4,
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.bn = nn.BatchNorm1d(EMBED_DIM, affine=False, track_running_stats=False)
        self.fc = nn.Linear(EMBED_DIM, num_classes)
        self.num_classes = num_classes
        # Frozen encoding statistics: plain attributes, deliberately not buffers (the BatchNorm stays
        # parameter- and buffer-free; they travel in checkpoints under "feature_stats").
        self.frozen_mean: Tensor | None = None
        self.frozen_var: Tensor | None = None

    # ---- body -------------------------------------------------------------------------------------
    def feature_maps(self, x: Tensor) -> dict[str, Tensor]:
        """``x [B,3,H,W]`` -> {layer1 [B,64,H/4,W/4], layer2 [B,128,H/8], layer3 [B,256,H/16], layer4 [B,512,H/32]}."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # [B, 64, H/4, W/4]
        f1 = self.layer1(x)  # [B, 64, H/4, W/4]
        f2 = self.layer2(f1)  # [B, 128, H/8, W/8]
        f3 = self.layer3(f2)  # [B, 256, H/16, W/16]
        f4 = self.layer4(f3)  # [B, 512, H/32, W/32]
        return {"layer1": f1, "layer2": f2, "layer3": f3, "layer4": f4}

    def pooled(self, x: Tensor) -> Tensor:
        """Pooled features before the BatchNorm: ``[B, 512]`` (float32)."""
        return self.pool(self.feature_maps(x)["layer4"]).flatten(1).float()

    def normalize(self, pooled: Tensor) -> Tensor:
        """``[B, 512]`` pooled -> embedding: frozen dataset statistics when set, else this batch's."""
        if self.frozen_mean is not None and self.frozen_var is not None:
            mean = self.frozen_mean.to(pooled.device)
            var = self.frozen_var.to(pooled.device)
            return (pooled.float() - mean) * torch.rsqrt(var + BN_EPS)
        return self.bn(pooled.float())

    # ---- public -----------------------------------------------------------------------------------
    def embed(self, x: Tensor) -> Tensor:
        """``x [B,3,H,W]`` -> embeddings ``[B, 512]``."""
        return self.normalize(self.pooled(x))

    def embed_with_features(self, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """One pass: (embedding ``[B, 512]``, feature maps layer1..layer4): step 2 encodes and compares with it."""
        feats = self.feature_maps(x)
        z = self.normalize(self.pool(feats["layer4"]).flatten(1).float())
        return z, feats

    def forward(self, x: Tensor) -> Tensor:
        """``x [B,3,H,W]`` -> logits ``[B, num_classes]``."""
        z = self.embed(x)  # [B, 512]
        return self.fc(z)  # [B, num_classes]

    # ---- frozen statistics -----------------------------------------------------------------------
    def set_frozen_stats(self, mean: Tensor | None, var: Tensor | None) -> EmbeddingClassifier:
        self.frozen_mean = None if mean is None else mean.detach().float().cpu()
        self.frozen_var = None if var is None else var.detach().float().cpu()
        return self

    def frozen_stats(self) -> dict[str, Tensor] | None:
        if self.frozen_mean is None:
            return None
        return {"mean": self.frozen_mean, "var": self.frozen_var}

    def load_init_weights(self, path: Path | str) -> tuple[list[str], list[str]]:
        """Load a local state dict: a torchvision ResNet-34 (its ``fc`` is skipped) or an EmbeddingClassifier."""
        p = Path(path)
        try:
            state = torch.load(p, map_location="cpu", weights_only=False)
        except Exception as exc:  # noqa: BLE001
            raise UserError(
                f"--init-weights {p} could not be read ({exc})", hint="pass a torch state dict file"
            ) from None
        if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
            state = state["model"]
        if not isinstance(state, dict):
            raise UserError(
                f"--init-weights {p} is not a state dict", hint="save one with torch.save(model.state_dict())"
            )
        state = {k.removeprefix("module."): v for k, v in state.items()}
        own = self.state_dict()
        take = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        if not any(k.startswith("layer4.") for k in take):
            raise UserError(
                f"--init-weights {p} has no ResNet-34 body weights that fit",
                hint="pass a torchvision resnet34 state dict",
            )
        missing = [k for k in own if k not in take]
        self.load_state_dict(take, strict=False)
        return sorted(take), missing


@torch.no_grad()
def feature_statistics(
    model: EmbeddingClassifier, batches, device: torch.device, limit: int
) -> dict[str, Tensor]:
    """Mean and (biased) variance of pooled features over up to ``limit`` images (float64 accumulation).

    ``batches`` yields images ``[B,3,H,W]`` (or tuples whose first item is the images). Under DDP the sums
    are all-reduced, so every rank gets the statistics of all ranks' images.
    """

    s1 = torch.zeros(EMBED_DIM, dtype=torch.float64, device=device)
    s2 = torch.zeros(EMBED_DIM, dtype=torch.float64, device=device)
    n = torch.zeros((), dtype=torch.float64, device=device)
    model.eval()
    for batch in batches:
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        x = x.to(device, non_blocking=True)
        with autocast(device):
            f = model.pooled(x).double()  # [B, 512]
        s1 += f.sum(0)
        s2 += (f * f).sum(0)
        n += len(f)
        if n.item() >= limit:
            break
    all_reduce_sum(s1), all_reduce_sum(s2), all_reduce_sum(n)
    if n.item() < 2:
        raise UserError(
            "too few images to compute the embedding statistics", hint="add train images to the manifest"
        )
    mean = s1 / n
    var = (s2 / n - mean * mean).clamp_min(0)
    return {"mean": mean.float().cpu(), "var": var.float().cpu(), "n": int(n.item())}


@torch.no_grad()
def recalibrate_batchnorm(model: EmbeddingClassifier, batches, device: torch.device, limit: int) -> int:
    """ "Precise BatchNorm": re-estimate the body's BatchNorm2d running statistics with the final weights.

    During training the running mean/variance are an exponential average (momentum 0.1) over batches seen
    while the weights kept changing: after a short run they still carry the initial values, after a long
    one they lag the last updates. Eval mode (frozen encoding, embed, step 2's perceptual loss) reads them,
    so at the end of step 1 they are recomputed as a plain average over up to ``limit`` images of shuffled
    training-size batches (train mode, no gradient, no weight change). Under DDP each rank averages its
    shard, then the ranks' averages are averaged. Returns the number of images used (this rank).
    """

    bns = [
        m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    ]
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the batches below
    was_training = model.training
    model.train()
    n = 0
    try:
        for batch in batches:
            x = batch[0] if isinstance(batch, (list, tuple)) else batch
            if len(x) < 2:
                continue
            with autocast(device):
                model.feature_maps(x.to(device, non_blocking=True))
            n += len(x)
            if n >= limit:
                break
    finally:
        for bn, m in zip(bns, momenta, strict=True):
            bn.momentum = m
        model.train(was_training)
    if world_size() > 1:
        for bn in bns:
            for buf in (bn.running_mean, bn.running_var):
                buf.div_(world_size())
                all_reduce_sum(buf)
    return n


def classifier_checkpoint(run) -> Path:
    """The classifier checkpoint a finished step 1 left (``final.pt``), else a clear error."""
    d = Path(run.step_dir("classifier"))
    if (d / "final.pt").is_file():
        return d / "final.pt"
    raise UserError(
        f"no finished classifier in {d} (final.pt is written when step 1 completes)",
        hint="run (or --resume) `poke train classify` first",
    )


def classifier_from_state(state: dict) -> EmbeddingClassifier:
    """Rebuild the classifier (weights and frozen statistics) from a checkpoint dict alone."""
    model = EmbeddingClassifier(int(state["model_args"]["num_classes"]))
    model.load_state_dict(state["model"])
    stats = state.get("feature_stats")
    if stats is not None:
        model.set_frozen_stats(stats["mean"], stats["var"])
    return model


def load_frozen_classifier(run, device: torch.device | str | None = None) -> EmbeddingClassifier:
    """The finished step-1 classifier of a run: eval mode, ``requires_grad`` off, frozen encoding statistics set."""

    state = load_checkpoint(classifier_checkpoint(run))
    model = classifier_from_state(state).eval().requires_grad_(False)
    return model.to(device) if device is not None else model


def rotate_batch(x: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """RotNet pretext: each image turned by k * 90 degrees, k in 0..3 -> (images, k labels ``[B]``)."""
    k = torch.randint(0, 4, (x.shape[0],), generator=generator).to(x.device)
    out = torch.empty_like(x)
    for r in range(4):
        m = k == r
        if m.any():
            out[m] = torch.rot90(x[m], r, dims=(2, 3))
    return out, k


def param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = [
    "CLASSIFIER_KIND",
    "EMBED_DIM",
    "EmbeddingClassifier",
    "classifier_checkpoint",
    "classifier_from_state",
    "feature_statistics",
    "load_frozen_classifier",
    "param_count",
    "recalibrate_batchnorm",
    "rotate_batch",
]

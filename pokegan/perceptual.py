"""Step 2's loss: a perceptual distance from the frozen classifier's own feature maps (plus optional pixel L1).

For each of layer1..layer4 the feature maps of the real and the reconstructed image are unit-normalised
across channels at every position (as in LPIPS, so no layer dominates by scale) and compared by mean
squared difference; the layers are weighted (``layer_weights``) and summed. The real side is computed once
per batch, together with the embedding that the generator reconstructs from (``embed_with_features``): one
frozen classifier instance serves both the encoding and the loss.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LAYERS = ("layer1", "layer2", "layer3", "layer4")


def _unit(f: Tensor) -> Tensor:
    """``[B, C, h, w]`` -> unit length along C."""
    return f.float() * torch.rsqrt(f.float().pow(2).sum(1, keepdim=True) + 1e-10)


class PerceptualLoss(nn.Module):
    def __init__(
        self, classifier: nn.Module, layer_weights: Sequence[float] = (1, 1, 1, 1), pixel_l1: float = 0.0
    ):
        super().__init__()
        if len(layer_weights) != len(LAYERS):
            raise ValueError(f"layer_weights needs {len(LAYERS)} values, got {len(layer_weights)}")
        self.classifier = classifier  # frozen: eval mode, requires_grad False
        self.weights = dict(zip(LAYERS, (float(w) for w in layer_weights), strict=True))
        self.pixel_l1 = float(pixel_l1)

    @torch.no_grad()
    def encode(self, real: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Real images ``[B,3,S,S]`` -> (embeddings ``[B,512]``, unit-normalised target feature maps)."""
        z, feats = self.classifier.embed_with_features(real)
        return z, {k: _unit(feats[k]) for k in LAYERS if self.weights[k] > 0}

    def forward(
        self, recon: Tensor, real: Tensor, targets: dict[str, Tensor]
    ) -> tuple[Tensor, dict[str, float]]:
        """(loss, per-term values) of a reconstruction ``[B,3,S,S]`` against ``encode(real)``'s targets."""
        feats = self.classifier.feature_maps(recon)
        terms: dict[str, Tensor] = {}
        for k, target in targets.items():
            terms[k] = self.weights[k] * (_unit(feats[k]) - target).pow(2).sum(1).mean()  # mean over B, h, w
        if self.pixel_l1 > 0:
            terms["pixel_l1"] = self.pixel_l1 * F.l1_loss(recon.float(), real.float())
        loss = sum(terms.values())
        return loss, {k: v.item() for k, v in terms.items()}


__all__ = ["LAYERS", "PerceptualLoss"]

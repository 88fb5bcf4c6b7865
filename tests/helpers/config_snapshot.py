"""Every step's resolved config per preset, as the code before the preset table and the nested configs
resolved it (``tests/snapshots/resolved_configs.json``: ``config_to_dict(load_step_config(cls, section,
preset=p))`` for each section and preset, ``none`` = no preset)."""

from __future__ import annotations

import json

from tests.conftest import REPO

SNAPSHOT = json.loads((REPO / "tests" / "snapshots" / "resolved_configs.json").read_text(encoding="utf-8"))

# keys added since the snapshot, at their default (a preset that sets one has it in the snapshot itself);
# keys the nesting made settable: [gmm] holds the GMMFitConfig inline, whose k-means settings the step
# always fitted with at these defaults but could not set
NEW_KEYS = {
    "gmm": {"kmeans_iter": 20, "kmeans_restarts": 3},
    "gan": {"recon_size": 0, "d_downsample": "stride", "augment": True},  # issue 12's options, off by default
    # issue 12: step 2 stopped following [data] augment (a flip barely moves the embedding, so augmented
    # targets blurred the reconstructions); it reconstructs the images as they are unless told otherwise
    "pretrain": {"augment": False, "g_output": "tanh"},
    # issue 12: the class-conditional ProGAN (on in the small preset) and its class anchor (off by default;
    # which real image it holds a fake to: its batch row's unless a preset says otherwise)
    "progan": {"conditional": False, "anchor_weight": 0.0, "anchor_size": 8, "anchor_match": "row"},
}

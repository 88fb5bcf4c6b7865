"""The presets, one static table: ``PRESETS[preset][section][key] = value``.

Every step config reads its section from here (``load_step_config(..., preset="small")``); nothing adds to
or changes this table at run time. A key is a field of the section's config dataclass (``[data]``:
:class:`pokegan.config.DataConfig`, ``[classify]``: ``ClassifyConfig``, ``[gmm]``:
``pokegan.steps.gmm_config.GMMConfig``, ...); a field a preset does not name keeps the dataclass default.
Unknown keys are refused when the preset is loaded, like a config file's.

- ``tiny``: a CPU smoke run: 32 px, a few hundred images, about a minute per step on 2 cores.
- ``small``: the CPU recipe (docs/training.md, docs/progan.md): 32 px, a few thousand sprites, the whole
  pipeline in about 30 minutes on 2 cores.
- ``default``: one GPU, 128 px, the real recipe for ~80k images.

Tests that change a value do it with ``monkeypatch.setitem`` (restored afterwards), never by assignment.
"""

from __future__ import annotations

from typing import Any

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # ---- tiny: a CPU smoke run -----------------------------------------------------------------------------
    "tiny": {
        "data": {"image_size": 32, "batch_size": 32, "num_workers": 0, "max_images": 400},
        "classify": {"epochs": 4, "lr": 2e-3, "warmup_steps": 10, "compile": False},
        "embed": {"batch_size": 128},
        "pretrain": {
            "epochs": 3,
            "lr": 2e-3,
            "warmup_steps": 10,
            "g_max_channels": 64,
            "g_channel_base": 1024,
            "grid_n": 8,
        },
        "gmm": {"components": 4, "covariance": "diag", "max_iter": 50, "plot_points": 500},
        "gan": {
            "steps": 24,
            "lr_g": 2e-4,
            "lr_d": 2e-4,
            "d_channels": 16,
            "d_max_channels": 64,
            "ema_decay": 0.9,
            "n_fixed": 16,
            "sample_every": 8,
            "checkpoint_every": 8,
            "metrics_every": 12,
            "metrics_samples": 64,
            "log_every": 4,
            "judge_epochs": 3,
            "judge_max_images": 400,
        },
        # 8 -> 16 -> 32 px, small widths, one short cycle per stage
        "progan": {
            "sizes": [8, 16, 32],
            "cycle": [{"lr": 5e-4, "epochs": 2}, {"lr": 1e-4, "epochs": 1}],
            "z_dim": 64,
            "channel_base": 512,
            "max_channels": 128,
            "n_fixed": 16,
            "sample_every": 20,
            "checkpoint_every": 100,
            "log_every": 5,
        },
    },
    # ---- small: the CPU recipe (docs/training.md): a few thousand 32 px sprites, ~30 minutes on 2 cores -----
    "small": {
        "data": {"image_size": 32, "batch_size": 32, "num_workers": 0, "max_images": 0},
        "classify": {"epochs": 5, "lr": 2e-3, "warmup_steps": 50, "compile": False, "stats_images": 5000},
        "embed": {"batch_size": 256},
        "pretrain": {
            # lr 1e-3 with a linear output: 24 epochs took the reconstructions' L1 0.204 -> 0.124 against the
            # old 6 epochs at 2e-3 with tanh, which could stall on the white background; 40 took the judge FD
            # of the step-2 generator 20.9 -> 19.2; 36 fit the 30 minutes with room (docs/training.md)
            "epochs": 36,
            "lr": 1e-3,
            "warmup_steps": 50,
            "pixel_l1": 1.0,
            "g_max_channels": 128,
            "g_channel_base": 1024,
            "g_dilate_from": 64,
            # bilinear upsampling: the nearest-neighbour generator grew a hatched texture in the GAN phase
            # whatever the critic's settings; the bilinear one stays clean (docs/training.md)
            "g_upsample": "bilinear",
            "g_output": "linear",
            "grid_n": 16,
        },
        # many diagonal components: their samples lie 4.9 from the nearest embedding (embeddings: 2.9 from
        # each other), where 4 full-covariance ones (BIC's pick among 4, 8, 16) drew blends at 19.9
        "gmm": {"bic": [64, 128, 256], "covariance": "diag", "max_iter": 100},
        # settings chosen by the 32 px sprite experiments of docs/training.md
        "gan": {
            # dcgan with a coarse anchor: the anchor (step 2's task, pixel L1) compares 8x8 area averages at
            # weight 3, so it holds each creature's colours and layout while the critic draws the outlines
            # within them; the full-size anchor at 1 let dcgan twist shapes, at 10 it pinned the blur, and
            # weight-clipped wgan added nothing (docs/training.md, "Outlines: dcgan with a coarse anchor")
            "loss": "dcgan",
            "n_critic": 1,
            "lr_g": 2e-4,
            "lr_d": 2e-4,
            "betas": [0.5, 0.99],
            "r1_gamma": 0.05,
            "diffaugment": "color,translation,cutout",
            "recon_weight": 3.0,
            "recon_size": 8,
            # the critic and the anchor see the sprites as they are, like step 2 and the mixture
            "augment": False,
            # outlines by step 400; the judge (every 200 steps) picks best.pt among steps 0, 200 and 400
            "steps": 400,
            "d_channels": 16,
            "d_max_channels": 128,
            "ema_decay": 0.99,
            "n_fixed": 64,
            "sample_every": 100,
            "checkpoint_every": 100,
            "metrics_every": 200,
            "metrics_samples": 500,
            "log_every": 25,
        },
        # docs/progan.md: 16 -> 32 px. ProGAN's stabilisers on DCGAN blocks: pixel norm in G, a
        # spectral-norm critic with minibatch stddev, replicate padding (no frame), EMA of G, skip-output
        # growth, a lower rate at 32 px, nearest-neighbour upsampling, DiffAugment on real and fake; and
        # class-conditional (G(z, y), a projection critic): every unconditional arm collapsed to one or two
        # palettes in the 16 px stage, the conditional one keeps each class's colours (judge FD 119 -> 34)
        "progan": {
            # its own batch: the shared small [data] batch_size (32, set for the three-step recipe) would
            # double the steps of every stage the figures in docs/progan.md were taken at
            "data": {"batch_size": 64},
            "sizes": [16, 32],
            # 34 epochs at 16 px and 12 at 32 px: ~1,350 CPU-s (the conditional model kept improving where
            # the unconditional one had collapsed: 16 px judge FD 39.8 after 14 epochs, 28.2 after 34)
            "cycle": [{"lr": 2e-4, "epochs": 30}, {"lr": 1e-4, "epochs": 4}],
            "cycles": {"32": [{"lr": 1e-4, "epochs": 10}, {"lr": 5e-5, "epochs": 2}]},
            "conditional": True,
            # the class anchor: G's loss adds 10 x the L1 between each fake and the nearest train frame of its
            # label, at full size. Against no anchor, judge FD at 32 px 33.6 -> 26.7, recall 0.36 -> 0.56; the
            # judge scores it level with the anchor to the batch row's random frame (weight 3: 28.1 and 25.6
            # on two seeds), but that one pulls a class to the blend of its frames, mottled, where the
            # nearest frame draws the species (Pikachu, Charmander, Squirtle, Psyduck, ...); IMLE's "cover"
            # match varies a class's samples but is as mottled as the row anchor (docs/progan.md, "The
            # nearest-frame anchor")
            "anchor_weight": 10.0,
            "anchor_size": 0,
            "anchor_match": "nearest",
            "z_dim": 128,
            "channel_base": 1024,
            "max_channels": 256,
            "norm": "pixel",
            "d_norm": "spectral",
            "mbstd": True,
            "padding": "replicate",
            "ema_decay": 0.995,
            "upsample": "nearest",
            # growth: StyleGAN2 skip outputs, every layer trainable at 32 px. With the nearest-frame anchor
            # the 16 px layers learn the finer frame too: judge FD 29.1 -> 26.9, the outlines crisper; frozen,
            # the 32 px block only added a residual to the 16 px picture (its anchor L1 flat at 0.15). Before
            # that anchor, unfreezing hatched the samples (32.2 against 28.1), and the fade-in with every layer
            # trainable turned the palette into brown blobs on grey (judge FD 274 against 92, docs/progan.md)
            "freeze": False,
            "fade_in": False,
            "skip_rgb": True,
            # no translation: its zero padding drew a grey frame round every sample (docs/progan.md)
            "diffaugment": "color,cutout",
            "n_fixed": 64,
            "sample_every": 100,
            "checkpoint_every": 200,
            "log_every": 20,
        },
    },
    # ---- default: one GPU, 128 px, ~80k images -------------------------------------------------------------
    "default": {
        "data": {"image_size": 128, "batch_size": 128, "num_workers": 8},
        "classify": {"epochs": 60, "lr": 1e-3, "warmup_steps": 1000, "compile": True},
        "embed": {"batch_size": 512},
        "pretrain": {
            "epochs": 40,
            "lr": 2e-4,
            "warmup_steps": 1000,
            "g_max_channels": 512,
            "g_channel_base": 16384,
        },
        "gmm": {"bic": [8, 16, 32, 64], "covariance": "full", "max_iter": 100},
        "gan": {
            "steps": 20_000,
            "d_channels": 32,
            "d_max_channels": 512,
            "ema_decay": 0.999,
            "sample_every": 500,
            "checkpoint_every": 500,
            "metrics_every": 2000,
            "metrics_samples": 5000,
        },
        # 16 -> 32 -> 64 px, DCGAN widths, a longer cycle at the last size
        "progan": {
            "sizes": [16, 32, 64],
            "cycle": [{"lr": 2e-4, "epochs": 10}, {"lr": 5e-5, "epochs": 5}],
            "cycles": {
                "64": [{"lr": 2e-4, "epochs": 20}, {"lr": 1e-4, "epochs": 10}, {"lr": 2e-5, "epochs": 5}]
            },
            "z_dim": 128,
            "channel_base": 2048,
            "max_channels": 512,
            "n_fixed": 64,
            "sample_every": 500,
            "checkpoint_every": 1000,
        },
    },
}

PRESET_NAMES = tuple(PRESETS)

__all__ = ["PRESETS", "PRESET_NAMES"]

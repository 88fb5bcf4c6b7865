"""``poke train progan``: a ProGAN-style progressive DCGAN.

- ``models``: :class:`ProGANArgs`, the growable :class:`Generator` and mirrored :class:`Discriminator`.
- ``grow``: rebuild one block larger, copy matching weights, freeze old layers, fade-in alpha.
- ``gradflow``: per-layer mean/max |grad| bar charts (one PNG per stage).
- ``gif``: snapshot frames and ``all_samples.gif``.
- ``config``: :class:`ProGANConfig` (the ``[progan]`` section), the per-stage cycles, presets, TOML.
- ``state``: the training state, :class:`Position` (stage, cycle entry, epoch, batch), checkpoints,
  :func:`load_generator` (G rebuilt from a checkpoint alone).
- ``train``: :func:`train_progan` (what the command calls), :func:`run_progan` (the loop over stages,
  cycle entries and epochs), :func:`train_step`.

Only torch-side imports: the data-side packages are not needed here.
"""

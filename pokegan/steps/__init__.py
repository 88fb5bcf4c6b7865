"""Training steps: classify (1), embed, pretrain (2), gmm and gan (3); each writes one folder of a run."""

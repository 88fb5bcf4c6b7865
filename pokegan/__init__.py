"""pokegan: the trainer.

Step 1: a ResNet-34 classifier whose pooled 512-d features pass a parameter-free, statistics-free
BatchNorm (embeddings near a standard Gaussian). Step 2: freeze it, encode every image, pretrain a
generator to reconstruct images from their embeddings with a perceptual loss from the same classifier.
Step 3: GAN fine-tuning from Gaussian-mixture latents. Plus a progressive DCGAN.

Only torch/torchvision/numpy/pandas-side packages are imported here: the trainer runs where the data-side
packages (requests, ddgs, imagehash) are not installed.
"""

__version__ = "0.1.0"

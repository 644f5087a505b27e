"""Training InfoGAN: data sets, losses, the training loop and its CLI, evaluation."""

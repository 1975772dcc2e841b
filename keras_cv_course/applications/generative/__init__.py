"""generative models."""

"""segmentation models."""

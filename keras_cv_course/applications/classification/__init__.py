"""classification models."""

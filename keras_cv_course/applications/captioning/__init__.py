"""Image captioners: an image encoder and a one-step language decoder (``captioner.py``)."""

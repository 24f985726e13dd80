"""Headless core: no Qt and no TensorFlow at import time (see DESIGN.md, Layers)."""

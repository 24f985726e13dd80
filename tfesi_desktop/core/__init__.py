"""Headless core: no Qt and no TensorFlow at import time (see docs/architecture.md, Layers)."""

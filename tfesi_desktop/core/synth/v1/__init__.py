"""Synthetic generator version 1 (the phantom the shipped demonstration model was trained on)."""

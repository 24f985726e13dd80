"""Where an image comes from, as far as a model's validity goes (docs/architecture.md,
invariant 8: an input unlike the training images is flagged, not scored with false confidence).

A model trained only on synthetic phantoms (its card's ``synthetic_training_data``) has never
seen an image from a real scanner, however close its features may fall: on real cervical MRI the
demonstration model's feature distance lay 0.9-2.4 times its limit while fresh phantoms lay
0.5-1.2 times it (docs/real-scans.md), so the distance alone cannot keep them apart. The
generator marks every image it writes (Manufacturer), and an image without that mark is flagged
for such a model: a wide separation by what is known, not by a threshold.
"""

from __future__ import annotations

GENERATOR_MANUFACTURER = "TFESI Desktop synthetic generator"


def source_note(synthetic_model: bool, manufacturer: str | None) -> str | None:
    """Why a prediction of this model on an image of this Manufacturer is not reliable whatever
    its features (a sentence), or None."""
    if not synthetic_model or (manufacturer or "").strip() == GENERATOR_MANUFACTURER:
        return None
    made_by = f" (Manufacturer '{manufacturer.strip()}')" if (manufacturer or "").strip() else ""
    return (f"This image was not made by the synthetic generator{made_by}: this model was "
            "trained on synthetic images only and has never been validated on a real scanner's "
            "images.")

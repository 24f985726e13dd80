"""Training inputs that expect hand-drawn ROIs: each epoch sees every patient through a fresh,
seeded random jitter of its ROI and intensities, made by the one model-input function.

- ROI: shifted up to ``shift`` of its size in each direction, scaled by ``scale`` (width and
  height independently within 3 % of each other), via :func:`..preprocess.jitter_roi` and
  :func:`..preprocess.model_input`, exactly as the run-time ROI set is made;
- a small rotation of the 100x100 input (reflected at the border);
- intensities: gamma, a smooth multiplicative bias field, Gaussian noise;
- the slice (off by default): at ``neighbour_slices`` rate a neighbouring slice (one up or
  down, the ROI carried there by geometry, :meth:`..manifest.Region.at`) with the patient's
  outcome, because a physician picking "the narrowest" slice by eye often picks its
  neighbour (issue 22).

Only NumPy and SciPy: the same sequence feeds Keras on the TensorFlow or the JAX backend.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..preprocess import INPUT_SIZE


@dataclass(frozen=True)
class Augmentation:
    shift: float = 0.15  # of the ROI size
    scale: tuple[float, float] = (0.85, 1.15)
    rotation_deg: float = 5.0
    log_gamma: float = 0.3  # gamma = exp(U(-g, g))
    bias: float = 0.15  # relative slope of a linear bias field across the input
    noise: float = 6.0  # largest noise SD, in input units (0..255)
    # rate of an adjacent slice instead of the case's own: off by default, because with the
    # run-time slice rule it measured worse (issue 22, docs/architecture.md: 0.3 gave 6.5 %
    # flips one slice off and AUC 0.866, none 3.5 % and 0.893, on the same fresh patients)
    neighbour_slices: float = 0.0

    def describe(self) -> dict:
        d = asdict(self)
        d["scale"] = list(self.scale)
        return d


_YY, _XX = np.mgrid[:INPUT_SIZE, :INPUT_SIZE] / (INPUT_SIZE - 1) - 0.5


def augmented_input(region, rng: np.random.Generator, aug: Augmentation) -> np.ndarray:
    """One jittered (100, 100, 3) float32 input in 0..255 for a :class:`..manifest.Region`."""
    from scipy.ndimage import rotate

    if aug.neighbour_slices and len(region.offsets) > 1:
        near = [o for o in region.offsets if abs(o) == 1]
        # drawn every time (same stream whatever the outcome), used at the documented rate
        u, pick = rng.random(), int(rng.integers(2))
        if near and u < aug.neighbour_slices:
            region = region.at(near[pick % len(near)])
    s = rng.uniform(*aug.scale)
    crop = (rng.uniform(-aug.shift, aug.shift), rng.uniform(-aug.shift, aug.shift), s)
    img = region.input(crop=crop).image[:, :, 0].astype(np.float64)
    if aug.rotation_deg:
        img = rotate(img, rng.uniform(-aug.rotation_deg, aug.rotation_deg), reshape=False,
                     order=1, mode="reflect")
    img = 255.0 * (np.clip(img, 0, 255) / 255.0) ** np.exp(rng.uniform(-aug.log_gamma,
                                                                         aug.log_gamma))
    field = 1.0 + rng.uniform(-aug.bias, aug.bias) * _XX + rng.uniform(-aug.bias, aug.bias) * _YY
    img = img * field + rng.normal(0.0, rng.uniform(0, aug.noise), img.shape)
    img = np.clip(img, 0, 255).astype(np.float32)
    return np.repeat(img[:, :, None], 3, axis=2)


def make_sequence(regions, labels, indices, *, batch_size: int, aug: Augmentation | None,
                  seed: int):
    """A ``keras.utils.PyDataset`` over ``indices``: reshuffled and re-jittered every epoch,
    repeatable from ``seed``. Without ``aug``, the ROIs as drawn (still reshuffled)."""
    import keras

    fixed = None if aug else np.stack([regions[i].input().image for i in indices])

    class Jittered(keras.utils.PyDataset):
        def __init__(self):
            super().__init__(workers=1, use_multiprocessing=False)
            self.epoch = 0
            self.order = np.random.default_rng([seed, 0]).permutation(len(indices))

        def __len__(self):
            return int(np.ceil(len(indices) / batch_size))

        def __getitem__(self, b):
            pos = self.order[b * batch_size:(b + 1) * batch_size]
            y = np.asarray(labels)[np.asarray(indices)[pos]].astype(np.float32)
            if fixed is not None:
                return fixed[pos], y
            rng = np.random.default_rng([seed, self.epoch, b])
            return np.stack([augmented_input(regions[indices[p]], rng, aug) for p in pos]), y

        def on_epoch_end(self):
            self.epoch += 1
            self.order = np.random.default_rng([seed, self.epoch]).permutation(len(indices))

    return Jittered()

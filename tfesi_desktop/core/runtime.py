"""Running a bundle's network on LiteRT, with NumPy Grad-CAM. No TensorFlow.

:class:`Predictor` loads a verified bundle once. :func:`predict` makes one *stable* prediction:
the model inputs of the bundle's fixed set of ROIs around the one drawn (test-time augmentation,
:data:`..preprocess.TTA_CROPS`), one batched LiteRT call, the mean logit calibrated with the
card's scaling, the range of the per-ROI probabilities as an interval, a distance to the training
images' features (out-of-distribution flag), and Grad-CAM of the predicted class averaged over
the ROIs in stored pixels (finer than the network's own map). :func:`predict_slices` does the
same over the slices around the chosen one in the same batched call (the ROI carried there by
geometry, :mod:`.neighbourhood`) and rests the result on the narrowest-looking one where the card
says so. See docs/architecture.md.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import sys
import threading
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from .bundle import HEAD_FILE, LITERT_FILE, Bundle, load_bundle
from .errors import ModelError
from .gradcam import Head, gradcam_batch, upsample
from .neighbourhood import DEFAULT_OFFSETS, RULES, Neighbourhood, based_on
from .ood import OOD_FILE, TrainingDistribution, intensity_histogram
from .preprocess import (
    PREPROCESSING_VERSION,
    TTA_CROPS,
    ModelInput,
    RoiTransform,
    jitter_roi,
    model_inputs,
)

NUM_THREADS = 2
# The ROIs scored on each neighbouring slice (a subset of the ROI set, to keep the prediction
# within its time budget: 13 + 2 x 5 inputs in one call): the ROI as drawn, two diagonal shifts
# and the two outer scales. A card's ``tta.slices.crops`` overrides it.
NEIGHBOUR_CROPS: tuple[tuple[float, float, float], ...] = (
    (0.0, 0.0, 1.0), (-0.1, -0.1, 1.0), (0.1, 0.1, 1.0), (0.0, 0.0, 0.88), (0.0, 0.0, 1.12))


def sigmoid(x):
    """The logistic function, without overflow for large logits (float for a scalar)."""
    out = 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, np.float64)))
    return float(out) if out.ndim == 0 else out


def format_probability(p: float) -> str:
    """A probability for people: never "0 %" or "100 %" (docs/architecture.md, invariant 8)."""
    if p < 0.01:
        return "< 1 %"
    if p > 0.99:
        return "> 99 %"
    return f"{100 * p:.0f} %"


@dataclass(frozen=True)
class Calibration:
    """``P = sigmoid(logit / temperature + intercept)`` (temperature or Platt scaling)."""

    temperature: float = 1.0
    intercept: float = 0.0
    method: str = "none"

    @classmethod
    def from_card(cls, card: dict) -> Calibration:
        c = card.get("calibration") or {}
        t = float(c.get("temperature", 1.0))
        b = float(c.get("intercept", 0.0))
        if not np.isfinite(t) or t <= 0 or not np.isfinite(b):
            raise ModelError("The model card's calibration is invalid (temperature must be a "
                             "positive number).")
        return cls(t, b, str(c.get("method", "temperature scaling" if c else "none")))

    def logit(self, raw):
        return np.asarray(raw, np.float64) / self.temperature + self.intercept

    def describe(self) -> str:
        if self.method == "none":
            return "uncalibrated"
        return f"{self.method} (T = {self.temperature:.3g}, b = {self.intercept:+.3g})"


@contextlib.contextmanager
def _native_stderr_closed():
    """File descriptor 2 pointed at the null device for the duration (native libraries write
    to it directly, past Python's sys.stderr)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class Predictor:
    """A loaded model: LiteRT interpreter, head weights, calibration, the ROI set and the
    training feature distribution. Thread-safe (one call at a time)."""

    def __init__(self, bundle: Bundle | str | Path, *, num_threads: int = NUM_THREADS,
                 quiet: bool = False):
        """``quiet``: keep LiteRT's native "INFO: Created TensorFlow Lite XNNPACK delegate"
        line off stderr (it has no switch; the process's stderr is closed for the moment the
        interpreter allocates). For single-threaded command-line use only: another thread's
        message at that moment would be lost."""
        from ai_edge_litert.interpreter import Interpreter

        self.bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
        card = self.bundle.card
        try:
            self._interp = Interpreter(model_path=str(self.bundle.file(LITERT_FILE)),
                                       num_threads=num_threads)
            with _native_stderr_closed() if quiet else contextlib.nullcontext():
                self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise ModelError(f"The LiteRT model cannot be loaded ({e}).",
                             self.bundle.file(LITERT_FILE)) from e
        self.head = Head.load(self.bundle.file(HEAD_FILE))
        (inp,) = self._interp.get_input_details()
        if tuple(inp["shape"][1:]) != (100, 100, 3):
            raise ModelError(f"The model expects input {inp['shape']}, not 100x100x3.")
        self._input = inp["index"]
        self._batch = 1
        # outputs are picked by shape, not position: LiteRT's order differs from the signature's
        self._features = self._logit = None
        for o in self._interp.get_output_details():
            if len(o["shape"]) == 4:
                self._features = o["index"]
            elif int(np.prod(o["shape"])) == 1:
                self._logit = o["index"]
        if self._features is None or self._logit is None:
            raise ModelError("The LiteRT model lacks the feature-map or logit output.")
        self._lock = threading.Lock()
        self.calibration = Calibration.from_card(card)
        tta = card.get("tta") or {}
        self.crops = tuple(tuple(float(v) for v in c) for c in tta.get("crops", TTA_CROPS))
        if not self.crops or self.crops[0] != (0.0, 0.0, 1.0):
            # the first input is the ROI as drawn: the provenance, the map's frame and the
            # report's model input are its
            raise ModelError("The model card's ROI set must start with the ROI as drawn "
                             "(0, 0, 1).", self.bundle.file("card.json"))
        self.ood = (TrainingDistribution.load(self.bundle.file(OOD_FILE))
                    if OOD_FILE in card.get("files", {}) else None)
        # the slices around the chosen one (docs/architecture.md, invariant 8): a card made
        # before issue 22 was calibrated on the chosen slice alone, so its result stays there
        # (rule "chosen") and the neighbours only warn; a newer card says "narrowest"
        sl = tta.get("slices") or {}
        try:
            self.slice_offsets = tuple(int(o) for o in sl.get("offsets", DEFAULT_OFFSETS))
            self.slice_rule = str(sl.get("rule", "chosen"))
            self.neighbour_crops = tuple(tuple(float(v) for v in c)
                                         for c in sl.get("crops", NEIGHBOUR_CROPS))
        except (TypeError, ValueError):
            self.slice_offsets, self.slice_rule, self.neighbour_crops = (), "", ()
        if (0 not in self.slice_offsets or self.slice_rule not in RULES
                or not self.neighbour_crops or self.neighbour_crops[0] != (0.0, 0.0, 1.0)
                or any(len(c) != 3 or c[2] <= 0 for c in self.neighbour_crops)):
            raise ModelError("The model card's slice neighbourhood (tta.slices) is invalid: "
                             "offsets must include 0, the rule be 'narrowest' or 'chosen', "
                             "the crops start with the ROI as drawn.",
                             self.bundle.file("card.json"))

    @property
    def temperature(self) -> float:
        return self.calibration.temperature

    def probability(self, logit):
        """Calibrated P(favourable) from raw logit(s)."""
        return sigmoid(self.calibration.logit(logit))

    def infer_batch(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(feature maps (n, rows, cols, channels), raw logits (n,)) for (n, 100, 100, 3)
        inputs in 0..255, in one LiteRT call (4x4x1280 maps for the paper's network, 12x12x128
        for the compact one)."""
        x = np.ascontiguousarray(images, np.float32)
        with self._lock:
            if x.shape[0] != self._batch:
                self._interp.resize_tensor_input(self._input, list(x.shape))
                self._interp.allocate_tensors()
                self._batch = x.shape[0]
            self._interp.set_tensor(self._input, x)
            self._interp.invoke()
            features = self._interp.get_tensor(self._features).copy()
            logits = self._interp.get_tensor(self._logit).reshape(-1).astype(np.float64)
        return features, logits

    def infer(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        """(feature map (rows, cols, channels), raw logit) for one (100, 100, 3) input."""
        f, z = self.infer_batch(np.asarray(image, np.float32)[None])
        return f[0], float(z[0])


@dataclass(frozen=True)
class Provenance:
    """What makes a result traceable (docs/architecture.md, invariant 4): the model, the
    preprocessing, the image and the ROI and side it was made for, and when. Not the level: it
    is the selection's alone (:class:`.selection.Result`)."""

    model_name: str
    model_version: str
    model_sha256: str
    synthetic_model: bool
    preprocessing_version: int
    calibration: str
    tta_crops: int
    roi: tuple[int, int, int, int]
    side: str
    time: str
    gradcam_target: str
    study_uid: str | None = None
    series_uid: str | None = None
    sop_instance_uid: str | None = None
    frame: int | None = None
    slice_index: int | None = None
    roi_side: str | None = None
    override: str | None = None  # a safety gate the user overrode, in words
    # the slice the result rests on (0-based stack index) when the neighbourhood rule moved it
    # off the chosen slice_index (the ROI carried there by geometry); None: the chosen slice
    based_on_slice_index: int | None = None

    def as_dict(self) -> dict:
        d = asdict(self)
        d["roi"] = list(self.roi)
        return d


@dataclass(frozen=True)
class Prediction:
    probability: float  # calibrated, of a favourable outcome (>= 50 % NRS reduction at 2 months)
    interval: tuple[float, float]  # range of the calibrated probabilities over the ROI set
    logit: float  # calibrated mean logit
    threshold: float
    crop_probabilities: tuple[float, ...]
    in_distribution: bool | None  # None: the model carries no feature distribution
    ood_distance: float | None
    ood_threshold: float | None
    cam_roi: np.ndarray = field(repr=False)  # (h, w) on the ROI, stored pixels, 0..1
    cam_input: np.ndarray = field(repr=False)  # the same map on the ROI's 100x100 input
    provenance: Provenance | None = None
    neighbourhood: Neighbourhood | None = None  # the slices around the chosen one
    raw_logit: float | None = None  # the mean logit before calibration (for refitting it)
    # why the result is not reliable whatever the features (core/source.py), or None
    source_note: str | None = None

    @property
    def label(self) -> str:
        return "favourable" if self.probability >= self.threshold else "poor"

    @property
    def cam_target(self) -> str:
        """The class the heat map shows: the predicted one."""
        return self.label

    @property
    def borderline(self) -> bool:
        """The ROIs around the one drawn disagree about the label."""
        lo, hi = self.interval
        return lo < self.threshold <= hi

    @property
    def reliable(self) -> bool:
        return self.in_distribution is not False and self.source_note is None

    def unreliable_text(self) -> str:
        """Why the result is not reliable, in words for the panel, the report and the CLI (empty
        when it is)."""
        if self.reliable:
            return ""
        why = []
        if self.in_distribution is False:
            why.append(f"its features lie {self.ood_distance:.2f} from the training images "
                       f"(limit {self.ood_threshold:.2f})")
        text = "This image is unlike the images this model was trained on" + (
            f" ({'; '.join(why)})" if why else "") + "; the prediction is not reliable."
        return text + (f" {self.source_note}" if self.source_note else "")

    def as_dict(self) -> dict:
        """The result for JSON output (CLI), provenance included."""
        return {
            "probability_favourable": round(self.probability, 6),
            "probability_text": format_probability(self.probability),
            "interval": [round(v, 6) for v in self.interval],
            "label": self.label, "threshold": self.threshold,
            "borderline": self.borderline, "logit": round(self.logit, 6),
            "in_distribution": self.in_distribution, "reliable": self.reliable,
            "source_note": self.source_note,
            "ood_distance": None if self.ood_distance is None else round(self.ood_distance, 4),
            "ood_threshold": (None if self.ood_threshold is None
                              else round(self.ood_threshold, 4)),
            "gradcam_class": self.cam_target,
            **(self.provenance.as_dict() if self.provenance else {}),
            **({"neighbourhood": self.neighbourhood.as_dict()} if self.neighbourhood else {}),
        }


def _average_cam(cams: np.ndarray, transforms: list[RoiTransform], roi) -> np.ndarray:
    """Per-crop maps (n, 4, 4) on their model inputs, mapped back into stored pixels and
    averaged where they cover the ROI; the ROI's part, scaled to 0..1."""
    x, y, w, h = roi
    xs = [t.roi[0] for t in transforms] + [x]
    ys = [t.roi[1] for t in transforms] + [y]
    x0, y0 = min(xs), min(ys)
    x1 = max([t.roi[0] + t.roi[2] for t in transforms] + [x + w])
    y1 = max([t.roi[1] + t.roi[3] for t in transforms] + [y + h])
    total = np.zeros((y1 - y0, x1 - x0))
    count = np.zeros_like(total)
    for cam, t in zip(cams, transforms, strict=True):
        tx, ty, tw, th = t.roi
        total[ty - y0:ty - y0 + th, tx - x0:tx - x0 + tw] += t.to_stored(cam)
        count[ty - y0:ty - y0 + th, tx - x0:tx - x0 + tw] += 1
    m = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
    m = m[y - y0:y - y0 + h, x - x0:x - x0 + w]
    top = m.max()
    return m / top if top > 0 else m


def predict(predictor: Predictor, values: np.ndarray, geometry, roi, side: str, *,
            gradcam_target: str | None = None, **identity) -> Prediction:
    """The stable prediction for an ROI on a slice (module docstring).

    ``values``: the slice's modality values as stored; ``roi`` in stored pixels; ``identity``:
    the :class:`Provenance` fields that name the image and selection (study_uid, ...).
    ``gradcam_target`` defaults to the predicted class."""
    inputs = model_inputs(values, geometry, roi, side, crops=predictor.crops)
    return predict_inputs(predictor, inputs, side=side, gradcam_target=gradcam_target,
                          **identity)


def predict_inputs(predictor: Predictor, inputs: list[ModelInput], *, side: str,
                   gradcam_target: str | None = None, **identity) -> Prediction:
    """:func:`predict` from the model inputs of the ROI set (the first is the ROI as drawn)."""
    images = np.stack([m.image for m in inputs])
    features, raw = predictor.infer_batch(images)
    return _assemble(predictor, inputs, images, features, raw, side=side,
                     gradcam_target=gradcam_target, identity=identity)


def slice_logits(raw: np.ndarray, sizes) -> np.ndarray:
    """The mean raw logit of each slice's inputs, ``raw`` laid out slice after slice."""
    ends = np.cumsum(sizes)
    return np.array([raw[e - n:e].mean() for n, e in zip(sizes, ends, strict=True)])


@dataclass(frozen=True)
class SliceRun:
    """One batched call over a neighbourhood: the inputs laid out slice after slice."""

    images: np.ndarray  # (n, 100, 100, 3)
    features: np.ndarray  # (n, rows, cols, channels)
    raw: np.ndarray  # (n,) raw logits
    sizes: tuple[int, ...]  # inputs per slice
    indices: tuple[int, ...]  # the slices (stack indices or offsets)
    logits: np.ndarray  # (slices,) raw mean logit per slice
    chosen: int
    based_on: int

    def part(self, index: int) -> slice:
        """The rows of slice ``index`` (one of :attr:`indices`)."""
        k = self.indices.index(index)
        a = int(np.sum(self.sizes[:k]))
        return slice(a, a + self.sizes[k])


def run_slices(predictor: Predictor, slice_inputs: list[list[ModelInput]], indices,
               chosen: int) -> SliceRun:
    """The network over every slice's inputs in one LiteRT call, and the slice the result
    rests on under the card's rule (:func:`..neighbourhood.based_on`)."""
    images = np.stack([m.image for inputs in slice_inputs for m in inputs])
    features, raw = predictor.infer_batch(images)
    sizes = tuple(len(x) for x in slice_inputs)
    z = slice_logits(raw, sizes)
    indices = tuple(int(i) for i in indices)
    return SliceRun(images, features, raw, sizes, indices, z, int(chosen),
                    based_on(chosen, indices, z, predictor.slice_rule))


def region_inputs(predictor: Predictor, region, *, at: int = 0, roi=None
                  ) -> tuple[list[int], list[list[ModelInput]]]:
    """(offsets, inputs per slice) of a :class:`..manifest.Region`'s neighbourhood around its
    slice ``at`` (an offset from the region's own), as :func:`..commands.neighbourhood_inputs`
    makes them from a stack. ``roi``: another ROI on that slice (a moved one); the
    neighbours' ROIs move with it."""
    centre = region.at(at)
    roi = centre.roi if roi is None else tuple(roi)
    offsets, inputs = [], []
    for o in predictor.slice_offsets:
        if at + o not in region.offsets:
            continue
        r = region.at(at + o)
        x, y = r.roi[0] + roi[0] - centre.roi[0], r.roi[1] + roi[1] - centre.roi[1]
        carried = jitter_roi((x, y, roi[2], roi[3]), (0.0, 0.0, 1.0), r.values.shape)
        inputs.append(model_inputs(r.values, region.dihedral, carried, region.side,
                                   crops=predictor.crops if o == 0 else
                                   predictor.neighbour_crops))
        offsets.append(at + o)
    return offsets, inputs


def predict_region(predictor: Predictor, region, *, at: int = 0, roi=None) -> Prediction:
    """The stable prediction the program makes on a region's slice ``at`` with its neighbours
    (the slice indices in the result are offsets from the region's own slice)."""
    offsets, inputs = region_inputs(predictor, region, at=at, roi=roi)
    return predict_slices(predictor, inputs, offsets, at, side=region.side)


def predict_slices(predictor: Predictor, slice_inputs: list[list[ModelInput]],
                   indices: list[int], chosen: int, *, side: str,
                   gradcam_target: str | None = None, **identity) -> Prediction:
    """The stable prediction over a neighbourhood of slices, in one batched LiteRT call.

    ``slice_inputs[k]``: the model inputs of the ROI (carried by geometry) on stack slice
    ``indices[k]``, the chosen slice's with the full ROI set, the others with
    ``predictor.neighbour_crops``. Each slice gets its own stable probability (the mean logit,
    calibrated); the result rests on the chosen slice, or under the card's rule "narrowest" on
    the one scored lowest (:func:`..neighbourhood.based_on`), and carries the strip
    (:class:`..neighbourhood.Neighbourhood`)."""
    run = run_slices(predictor, slice_inputs, indices, chosen)
    if run.based_on != chosen:
        identity = {**identity, "based_on_slice_index": run.based_on}
    part = run.part(run.based_on)
    pred = _assemble(predictor, slice_inputs[run.indices.index(run.based_on)],
                     run.images[part], run.features[part], run.raw[part], side=side,
                     gradcam_target=gradcam_target, identity=identity)
    nb = Neighbourhood(run.indices, tuple(float(v) for v in predictor.probability(run.logits)),
                       run.chosen, run.based_on, predictor.slice_rule,
                       predictor.bundle.threshold)
    return replace(pred, neighbourhood=nb)


def _assemble(predictor: Predictor, inputs: list[ModelInput], images: np.ndarray,
              features: np.ndarray, raw: np.ndarray, *, side: str, gradcam_target: str | None,
              identity: dict) -> Prediction:
    """The :class:`Prediction` of one slice's ROI set from its network outputs."""
    cal = predictor.calibration
    logit = float(cal.logit(raw.mean()))
    probability = sigmoid(logit)
    per_crop = predictor.probability(raw)
    threshold = predictor.bundle.threshold
    target = gradcam_target or ("favourable" if probability >= threshold else "poor")
    cams = gradcam_batch(features, predictor.head, target=target)
    transforms = [m.transform for m in inputs]
    roi = transforms[0].roi
    cam_roi = _average_cam(cams, transforms, roi)
    if predictor.ood is not None:
        distance = predictor.ood.distance(features.mean(axis=(0, 1, 2)),
                                          intensity_histogram(images))
        ood = (distance <= predictor.ood.threshold, distance, predictor.ood.threshold)
    else:
        ood = (None, None, None)
    b = predictor.bundle
    prov = Provenance(
        model_name=b.name, model_version=b.version, model_sha256=b.sha256,
        synthetic_model=b.synthetic, preprocessing_version=PREPROCESSING_VERSION,
        calibration=cal.describe(), tta_crops=len(inputs), roi=tuple(roi), side=side,
        time=_dt.datetime.now(_dt.UTC).astimezone().isoformat(timespec="seconds"),
        gradcam_target=target, **identity)
    return Prediction(probability, (float(per_crop.min()), float(per_crop.max())), logit,
                      threshold, tuple(float(v) for v in per_crop), *ood, cam_roi,
                      transforms[0].to_canonical(cam_roi), prov,
                      raw_logit=float(raw.mean()))


def single_pass(predictor: Predictor, model_input: ModelInput, *,
                target: str = "favourable") -> tuple[float, np.ndarray]:
    """One network pass and Grad-CAM on one input, no averaging: (calibrated probability,
    (100, 100) map on the input). For sanity checks and the benchmark."""
    features, raw = predictor.infer_batch(model_input.image[None])
    cam = gradcam_batch(features, predictor.head, target=target)[0]
    return float(predictor.probability(raw[0])), upsample(cam, model_input.image.shape[0])

"""Running a bundle's network on LiteRT, with NumPy Grad-CAM. No TensorFlow.

:class:`Predictor` loads a verified bundle once; :func:`predict` takes a model input (see
:mod:`.preprocess`) and returns a :class:`Prediction` with the probability, the label at the
card's threshold, Grad-CAM on the input and on the ROI in stored pixels, and the provenance
that makes the result traceable.
"""

from __future__ import annotations

import datetime as _dt
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .bundle import HEAD_FILE, LITERT_FILE, Bundle, load_bundle
from .errors import ModelError
from .gradcam import Head, gradcam, upsample
from .preprocess import PREPROCESSING_VERSION, ModelInput, check_roi, check_side, slice_input

NUM_THREADS = 2


class Predictor:
    """A loaded model: LiteRT interpreter plus head weights. Thread-safe (one call at a time)."""

    def __init__(self, bundle: Bundle | str | Path, *, num_threads: int = NUM_THREADS):
        from ai_edge_litert.interpreter import Interpreter

        self.bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
        try:
            self._interp = Interpreter(model_path=str(self.bundle.file(LITERT_FILE)),
                                       num_threads=num_threads)
            self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise ModelError(f"The LiteRT model cannot be loaded ({e}).",
                             self.bundle.file(LITERT_FILE)) from e
        self.head = Head.load(self.bundle.file(HEAD_FILE))
        (inp,) = self._interp.get_input_details()
        if tuple(inp["shape"][1:]) != (100, 100, 3):
            raise ModelError(f"The model expects input {inp['shape']}, not 100x100x3.")
        self._input = inp["index"]
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
        cal = self.bundle.card.get("calibration") or {}
        self.temperature = float(cal.get("temperature", 1.0))

    def probability(self, logit: float) -> float:
        """P(favourable) from the logit, with the card's temperature scaling if it has one."""
        return sigmoid(logit / self.temperature)

    def infer(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        """(feature map (4, 4, 1280), logit) for one (100, 100, 3) input in 0..255."""
        x = np.asarray(image, np.float32)[None]
        with self._lock:
            self._interp.set_tensor(self._input, x)
            self._interp.invoke()
            features = self._interp.get_tensor(self._features)[0].copy()
            logit = float(self._interp.get_tensor(self._logit).reshape(-1)[0])
        return features, logit


def sigmoid(x: float) -> float:
    """The logistic function, without overflow for large logits."""
    return float(0.5 * (1.0 + np.tanh(0.5 * x)))


@dataclass(frozen=True)
class Prediction:
    probability: float  # of a favourable outcome (>= 50 % NRS reduction at 2 months)
    logit: float
    threshold: float
    cam_input: np.ndarray = field(repr=False)  # (100, 100) on the model input, 0..1
    cam_roi: np.ndarray = field(repr=False)  # (h, w) on the ROI, stored pixels, 0..1
    provenance: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        return "favourable" if self.probability >= self.threshold else "poor"


def predict(predictor: Predictor, model_input: ModelInput, *, provenance: dict | None = None,
            target: str = "favourable") -> Prediction:
    """Run the network and Grad-CAM on one model input."""
    features, logit = predictor.infer(model_input.image)
    cam = gradcam(features, predictor.head, target=target)
    cam_input = upsample(cam, model_input.image.shape[0])
    b = predictor.bundle
    prov = {
        "model_name": b.name, "model_version": b.version, "model_sha256": b.sha256,
        "synthetic_model": b.synthetic, "preprocessing_version": PREPROCESSING_VERSION,
        "roi": list(model_input.transform.roi),
        "time": _dt.datetime.now(_dt.UTC).astimezone().isoformat(timespec="seconds"),
        "gradcam_target": target,
    }
    prov.update(provenance or {})
    prov["temperature"] = predictor.temperature
    return Prediction(predictor.probability(logit), logit, b.threshold, cam_input,
                      model_input.transform.to_stored(cam_input), prov)


def predict_slice(predictor: Predictor, stack, index: int, roi, side: str, *,
                  level: str | None = None, allow_side_mismatch: bool = False,
                  study_uid: str | None = None) -> tuple[Prediction, ModelInput]:
    """The whole path for one slice of a scanned stack: checks (ROI inside the image and at
    least 16 pixels, on the injection side of the midline unless allowed), the one model-input
    function, the network and Grad-CAM, with the UIDs in the provenance."""
    ref = stack.slices[index]
    geometry = ref.require_geometry()
    roi = check_roi(roi, geometry.shape)
    roi_side = check_side(geometry, roi, side, allow_mismatch=allow_side_mismatch)
    mi = slice_input(ref, roi, side)
    prov = {"study_uid": study_uid or stack.study_uid, "series_uid": stack.series_uid,
            "sop_instance_uid": ref.sop_instance_uid, "frame": ref.frame, "slice_index": index,
            "side": side, "roi_side": roi_side, "level": level}
    return predict(predictor, mi, provenance=prov), mi

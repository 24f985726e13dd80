"""``tfesi-desktop --self-test``: a headless check of an installed or packaged program. Loads the
model, predicts with Grad-CAM on the bundled demo study, writes a report into a temporary folder,
prints what it did and exits 0 (1 on any failure). Needs no screen."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path


def self_test(model: str | None = None) -> int:
    t0 = time.perf_counter()
    try:
        from .core.bundle import default_bundle_path
        from .core.commands import open_study, predict_selection, write_report
        from .core.manifest import read_manifest
        from .core.paths import demo_manifest
        from .core.runtime import Predictor
        from .core.session import Selection

        predictor = Predictor(Path(model) if model else default_bundle_path())
        (case,) = read_manifest(demo_manifest())
        result = open_study(case.study_path).scan
        stack = result.find_stack(case.series_uid)
        selection = Selection(stack.study_uid, stack.key, case.slice_key, case.roi, case.side,
                              "C6")
        outcome = predict_selection(predictor, stack, selection)
        pred = outcome.prediction
        assert 0.0 <= pred.probability <= 1.0 and pred.cam_roi.shape == case.roi[:1:-1]
        assert pred.cam_input.max() <= 1.0 and pred.cam_input.min() >= 0.0
        assert outcome.roi_side == case.side  # the side from the anatomy agrees
        with tempfile.TemporaryDirectory(prefix="tfesi-selftest-") as tmp:
            out, _, _ = write_report(outcome, predictor.bundle, result,
                                     Path(tmp) / "self-test.pdf", anonymize=True)
            size = out.stat().st_size
            assert size > 10_000 and out.read_bytes()[:5] == b"%PDF-"
    except Exception as e:  # noqa: BLE001 - a self-test reports every failure the same way
        print(f"self-test FAILED: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    b = predictor.bundle
    print(f"self-test passed in {time.perf_counter() - t0:.2f} s: model {b.name} {b.version} "
          f"(sha256 {b.sha256[:12]}), probability {pred.probability:.4f} ({pred.label}), "
          f"Grad-CAM {pred.cam_roi.shape[1]}x{pred.cam_roi.shape[0]} on the ROI, "
          f"report {size} bytes")
    return 0

"""``tfesi bench``: the speed figures, measured in one run on this machine.

Prediction figures use the bundled (or given) model on the demo study's ROI: LiteRT + NumPy
Grad-CAM (what the program runs) beside Keras's ``model.predict`` on the same input when
TensorFlow is installed, so the ratio is measured on the same machine at the same time.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

_FIRST_PREDICTION = """
import sys, time
from tfesi_desktop.core.bench import demo_prediction_inputs
from tfesi_desktop.core.dicom.pixels import modality_values
from tfesi_desktop.core.runtime import Predictor, predict
ref, roi, side = demo_prediction_inputs()
p = Predictor(sys.argv[1])
predict(p, modality_values(ref), ref.require_geometry(), roi, side)
print("done", flush=True)
"""


def demo_stack_inputs():
    """(stack, slice index, roi, side) of the demo study's manifest row."""
    from .dicom import scan
    from .manifest import read_manifest
    from .paths import demo_manifest

    (case,) = read_manifest(demo_manifest())
    stack = scan(case.study_path).find_stack(case.series_uid)
    return stack, stack.find_slice(case.slice_key), case.roi, case.side


def demo_prediction_inputs():
    """(slice, roi, side) of the demo study's manifest row."""
    stack, index, roi, side = demo_stack_inputs()
    return stack.slices[index], roi, side


def neighbourhood_prediction(predictor, stack, index, values, roi, side):
    """The stable prediction as the program makes it: the ROI set on the chosen slice and
    the neighbours' (decoded slices come from the pixel cache, as in the window), one call."""
    from .commands import neighbourhood_inputs
    from .runtime import predict_slices

    indices, inputs = neighbourhood_inputs(predictor, stack, index, values, roi, side)
    return predict_slices(predictor, inputs, indices, index, side=side)


def _ms(values) -> tuple[float, float]:
    v = np.asarray(values) * 1000
    return round(float(np.median(v)), 3), round(float(np.percentile(v, 90)), 3)


_RUNTIME = """
import json, sys, time
import numpy as np
from tfesi_desktop.core.bench import demo_stack_inputs, neighbourhood_prediction, _ms
from tfesi_desktop.core.bundle import load_bundle
from tfesi_desktop.core.dicom.pixels import modality_values
from tfesi_desktop.core.preprocess import model_input
from tfesi_desktop.core.runtime import Predictor, predict, single_pass
path, n, quick = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
out = {}
loads = []
for _ in range(3 if quick else 5):
    t = time.perf_counter(); predictor = Predictor(load_bundle(path))
    loads.append(time.perf_counter() - t)
out["model_load_ms_median"] = _ms(loads)[0]
stack, index, roi, side = demo_stack_inputs()
ref = stack.slices[index]
values, g = modality_values(ref), ref.require_geometry()
prep = []
for _ in range(5 if quick else 20):
    t = time.perf_counter(); mi = model_input(values, g, roi, side)
    prep.append(time.perf_counter() - t)
out["model_input_ms_median"] = _ms(prep)[0]
for name, call in (("predict_gradcam", lambda: single_pass(predictor, mi)),
                   ("single_slice_prediction", lambda: predict(predictor, values, g, roi, side)),
                   ("stable_prediction", lambda: neighbourhood_prediction(
                       predictor, stack, index, values, roi, side))):
    for _ in range(10):
        call()
    lat = []
    for _ in range(n if name == "predict_gradcam" else max(10, n // 4)):
        t = time.perf_counter(); call(); lat.append(time.perf_counter() - t)
    out[name + "_ms_median"], out[name + "_ms_p90"] = _ms(lat)
    out[name + "_runs"] = len(lat)
nb = neighbourhood_prediction(predictor, stack, index, values, roi, side).neighbourhood
out["stable_prediction_rois"] = len(predictor.crops)
out["stable_prediction_slices"] = len(nb.slice_indices)
out["stable_prediction_inputs"] = len(predictor.crops) + (len(nb.slice_indices) - 1) * len(
    predictor.neighbour_crops)
out["runtime_process_imported_tensorflow"] = "tensorflow" in sys.modules
print(json.dumps(out))
"""

_KERAS = """
import json, sys
import numpy as np
from tfesi_desktop.core.bench import _ms, demo_prediction_inputs
from tfesi_desktop.core.dicom.pixels import modality_values
from tfesi_desktop.core.preprocess import model_input
from tfesi_desktop.core.training.timing import keras_predict_seconds, training_images_per_second
keras_file, n, quick = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
ref, roi, side = demo_prediction_inputs()
mi = model_input(modality_values(ref), ref.require_geometry(), roi, side)
out = {"keras_model_predict_ms_median": _ms(keras_predict_seconds(keras_file, mi.image, n))[0]}
if not quick:
    out["training_images_per_s"] = training_images_per_second()
print(json.dumps(out))
"""


def _json_process(script: str, *args) -> dict:
    import json

    r = subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True,
                       text=True)
    if r.returncode != 0:
        raise RuntimeError(f"benchmark process failed: {r.stderr[-800:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def run_bench(*, model: str | None = None, repeat: int = 200, quick: bool = False,
              progress=None) -> dict:
    """The figures, each runtime in a process of its own: LiteRT in one that never imports
    TensorFlow (as the program runs; importing TensorFlow beside it tripled LiteRT's time),
    Keras's ``model.predict`` in another, the window in a third."""
    from .bundle import KERAS_FILE, default_bundle_path

    say = progress or (lambda m: None)
    path = Path(model) if model else default_bundle_path()
    figures: dict = {"model": str(path), "machine_cores": _cores()}

    say("process start to first prediction ...")
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", _FIRST_PREDICTION, str(path)],
                       capture_output=True, text=True)
    if r.returncode != 0 or "done" not in r.stdout:
        raise RuntimeError(f"first-prediction process failed: {r.stderr[-500:]}")
    figures["process_start_to_first_prediction_s"] = round(time.perf_counter() - t0, 3)

    say("LiteRT: one pass + Grad-CAM, and the stable prediction (no TensorFlow) ...")
    n = max(10, repeat // 10 if quick else repeat)
    figures.update(_json_process(_RUNTIME, path, n, int(quick)))

    if importlib.util.find_spec("tensorflow") and (path / KERAS_FILE).exists():
        say("Keras model.predict on the same input (TensorFlow, own process) ...")
        figures.update(_json_process(_KERAS, path / KERAS_FILE, 10 if quick else 30,
                                     int(quick)))
        figures["speedup_vs_keras_predict"] = round(
            figures["keras_model_predict_ms_median"] / figures["predict_gradcam_ms_median"], 1)
    else:
        figures["keras_model_predict_ms_median"] = None

    if importlib.util.find_spec("PySide6") and importlib.util.find_spec("pyqtgraph"):
        say("desktop window (offscreen) ...")
        figures.update(_gui_figures(runs=2 if quick else GUI_RUNS))

    say("DICOM header scan and decode ...")
    figures.update(_dicom_figures(50 if quick else 200))
    return figures


GUI_RUNS = 3  # fresh window processes: a stall is a worst case, so the worst run is reported


def _gui_figures(runs: int = GUI_RUNS) -> dict:
    """Process start to shown window, the GUI thread's longest stall, click to shown result:
    measured in ``runs`` fresh processes (``tfesi_desktop.gui.timing``), offscreen. Times are the
    worst run's (a stall that happens once in three openings is the physician's experience);
    ``*_runs_ms`` lists every run's longest stall."""
    import json
    import os

    env = dict(os.environ, QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"))
    results = []
    t0 = time.perf_counter()
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="tfesi-bench-home-") as home:
            env["TFESI_HOME"] = home  # a fresh user: no saved ROI, no window geometry
            r = subprocess.run([sys.executable, "-m", "tfesi_desktop.gui.timing"],
                               capture_output=True, text=True, env=env)
        if r.returncode != 0:
            return {"gui_error": r.stderr.strip().splitlines()[-1] if r.stderr else "failed"}
        one = json.loads(r.stdout.strip().splitlines()[-1])
        one.pop("probability", None)
        results.append(one)
    out = {k: max(r[k] for r in results) if isinstance(results[0][k], (int, float))
           else results[0][k] for k in results[0]}
    for k in ("gui_longest_stall_ms", "gui_scroll_longest_stall_ms",
              "gui_longest_stall_open_predict_ms"):
        if k in results[0]:
            out[k.removesuffix("_ms") + "_runs_ms"] = [r[k] for r in results]
    out["gui_runs"] = runs
    out["gui_process_total_s"] = round((time.perf_counter() - t0) / runs, 2)
    return out


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _dicom_figures(n_files: int) -> dict:
    """Scan the headers of an n-file axial series and decode one slice (synthetic, 256x256)."""
    import dataclasses

    from .dicom import modality_values, scan
    from .dicom import pixels as pixels_module
    from .synth.cohort import draw_patient, write_study

    with tempfile.TemporaryDirectory(prefix="tfesi-bench-") as tmp:
        p = draw_patient(0, 0, matrix=256)
        p = dataclasses.replace(p, n_slices=n_files, narrowest_index=n_files // 2)
        write_study(p, Path(tmp))
        files = sorted(Path(tmp).glob("*"))
        t = time.perf_counter()
        res = scan(tmp)
        scan_s = time.perf_counter() - t
        ref = res.find_stack().slices[n_files // 2]
        pixels_module._cache.clear()
        t = time.perf_counter()
        modality_values(ref)
        decode_s = time.perf_counter() - t
        return {"scan_headers_s": round(scan_s, 3), "scan_headers_files": len(files),
                "decode_one_slice_ms": round(decode_s * 1000, 2),
                "decode_transfer_syntax": p.storage.transfer_syntax}

"""`tfesi predict` as a user runs it: JSON, heat map picture, and every bad input as error."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tfesi_desktop.core.manifest import read_manifest
from tfesi_desktop.core.paths import demo_manifest, demo_study

pytest.importorskip("tensorflow")  # the session bundles are exported with TensorFlow


@pytest.fixture(scope="module")
def demo_case():
    (case,) = read_manifest(demo_manifest())
    return case


def _run(*args):
    return subprocess.run([sys.executable, "-m", "tfesi_desktop.cli", *map(str, args)],
                          capture_output=True, text=True)


def _args(case, model, **over):
    roi = ",".join(map(str, case.roi))
    a = dict(slice=case.slice_key, roi=roi, side=case.side, level="C6", model=model)
    a.update(over)
    out = ["predict", demo_study()]
    for k, v in a.items():
        out += [f"--{k}", v]
    return out


def test_predict_json_is_traceable(test_bundle, demo_case, tmp_path):
    model = test_bundle
    png = tmp_path / "heat.png"
    r = _run(*_args(demo_case, model), "--json", "--heatmap", png)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert 0 <= out["probability_favourable"] <= 1
    assert out["label"] in ("favourable", "poor") and out["threshold"] == 0.5
    assert out["sop_instance_uid"] == demo_case.slice_key
    assert out["series_uid"] == demo_case.series_uid
    assert out["roi"] == list(demo_case.roi) and out["side"] == demo_case.side
    assert out["level"] == "C6" and out["preprocessing_version"] == 2
    lo, hi = out["interval"]
    assert lo <= out["probability_favourable"] <= hi and out["gradcam_class"] == out["label"]
    assert len(out["model_sha256"]) == 64 and out["model_name"] == "test-original"
    assert "synthetic" in out["disclaimer"]
    # the picture: colour only inside the ROI (plus its outline), grey elsewhere
    img = np.asarray(Image.open(png).convert("RGB")).astype(int)
    scale = img.shape[1] // 256
    x, y, w, h = (v * scale for v in demo_case.roi)
    inside = img[y + 3 * scale:y + h - 3 * scale, x + 3 * scale:x + w - 3 * scale]
    outside = img[: 256 * scale, :][:, : max(x - 2, 1)]
    chroma_in = np.abs(inside[..., 0] - inside[..., 2]).mean()
    chroma_out = np.abs(outside[..., 0] - outside[..., 2]).mean()
    assert chroma_in > 10 and chroma_out < 1


def test_predict_by_slice_number_counts_as_the_window_does(test_bundle, demo_case):
    """--slice 5 is the fifth slice, as the window ("slice 5 / 12") and the report ("Slice 5
    of 12") number them, and the text output says so; the JSON's slice_index counts from 0."""
    from tfesi_desktop.core.dicom import scan

    model = test_bundle
    stack = scan(demo_study()).find_stack(demo_case.series_uid)
    index = stack.find_slice(demo_case.slice_key)
    a = json.loads(_run(*_args(demo_case, model), "--json").stdout)
    b = json.loads(_run(*_args(demo_case, model, slice=str(index + 1)), "--json").stdout)
    assert a["probability_favourable"] == b["probability_favourable"]
    assert b["slice_index"] == index
    text = _run(*_args(demo_case, model, slice=str(index + 1))).stdout
    assert f"slice {index + 1} of {len(stack.slices)}," in text


def test_bad_inputs_are_clear_errors(test_bundle, demo_case, tmp_path, capsys):
    from tfesi_desktop.cli import main

    model = test_bundle
    x, y, w, h = demo_case.roi
    other = "right" if demo_case.side == "left" else "left"
    cases = {
        "reaches outside": _args(demo_case, model, roi=f"{250},{y},{w},{h}"),
        "at least 16": _args(demo_case, model, roi=f"{x},{y},10,{h}"),
        "four integers": _args(demo_case, model, roi="1,2,3"),
        "Slice 99 does not exist": _args(demo_case, model, slice="99"),
        "numbered 1 to 12": _args(demo_case, model, slice="0"),
        "Slice -1 does not exist": _args(demo_case, model, slice="-1"),
        "No slice with SOP": _args(demo_case, model, slice="1.2.3"),
        "the injection side is": _args(demo_case, model, side=other),  # ROI on the other side
        "does not exist": ["predict", tmp_path / "nothing", "--slice", "0", "--roi",
                           "0,0,20,20", "--side", "left"],
        "no card.json": _args(demo_case, tmp_path),
    }
    for expect, args in cases.items():
        try:
            rc = main([str(a) for a in args])
        except SystemExit as e:  # argparse's own errors
            rc = e.code
        err = capsys.readouterr().err
        assert rc == 2, (expect, err)
        assert err.strip().splitlines()[-1].startswith("error:"), expect
        assert expect.lower() in err.lower(), (expect, err)
        assert "Traceback" not in err
    # and once as a user runs it: a separate process prints the line, no traceback
    r = _run(*cases["reaches outside"])
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith("error:")
    assert "Traceback" not in r.stderr
    # the one line, without LiteRT's native "INFO: Created ... XNNPACK delegate" before it
    r = _run(*cases["the injection side is"])
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    # the side check can be overridden on purpose
    r = _run(*_args(demo_case, model, side=other), "--allow-side-mismatch", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["roi_side"] == demo_case.side


def test_predicting_needs_no_tensorflow(test_bundle, demo_case):
    """The desktop program's path (LiteRT + NumPy) works where TensorFlow cannot be imported."""
    model = test_bundle
    code = (
        "import sys; sys.modules['tensorflow'] = None; sys.modules['keras'] = None\n"
        "from tfesi_desktop.cli import main\n"
        f"sys.exit(main({[str(a) for a in _args(demo_case, model)] + ['--json']!r}))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "probability_favourable" in r.stdout

"""End to end: the program in a real X window under Xvfb; the screenshots are looked at."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from tfesi_desktop.core.manifest import read_manifest
from tfesi_desktop.core.paths import demo_manifest


@pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="xvfb-run is not installed")
def test_real_window_under_xvfb_shows_roi_overlay_and_letters(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}
    env["QT_QPA_PLATFORM"] = "xcb"
    r = subprocess.run(["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", sys.executable, "-m",
                        "tfesi_desktop.gui.screenshot", str(tmp_path)], capture_output=True,
                       text=True, env=env, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "platform xcb" in r.stdout
    (case,) = read_manifest(demo_manifest())
    before = np.asarray(Image.open(tmp_path / "2-roi.png").convert("RGB")).astype(int)
    after = np.asarray(Image.open(tmp_path / "3-prediction.png").convert("RGB")).astype(int)
    assert before.shape == after.shape and before.shape[1] >= 1300

    def colourful(img):
        return np.abs(img[..., 0] - img[..., 2]) + np.abs(img[..., 1] - img[..., 2])

    # the yellow orientation letters and the ROI's outline are drawn
    view_w = before.shape[1] - 500
    yellow = (after[..., 0] > 200) & (after[..., 1] > 180) & (after[..., 2] < 120)
    assert yellow[:, :view_w].sum() > 100
    # the prediction added colour (the Grad-CAM overlay) to the picture, which is otherwise the
    # same slice ...
    added = (colourful(after[:, :view_w]) > 80) & (colourful(before[:, :view_w]) < 40)
    ys, xs = np.nonzero(added)
    assert len(ys) > 150, "no overlay appeared"
    # ... inside the ROI's outline: the yellow shape around the overlay's centre, which has the
    # ROI's proportions
    parts, _ = ndimage.label(ndimage.binary_dilation(yellow, iterations=2))
    cy, cx = int(np.median(ys)), int(np.median(xs))
    around = [i for i, sl in enumerate(ndimage.find_objects(parts), start=1)
              if sl[0].start <= cy < sl[0].stop and sl[1].start <= cx < sl[1].stop]
    assert len(around) == 1, "no ROI outline around the overlay"
    oy, ox = np.nonzero(parts == around[0])
    box_h, box_w = np.ptp(oy) + 1, np.ptp(ox) + 1
    assert abs(box_w / box_h - case.roi[2] / case.roi[3]) < 0.2
    assert box_h < 0.5 * before.shape[0] and box_w < 0.5 * view_w
    assert oy.min() <= ys.min() and ys.max() <= oy.max()
    assert ox.min() <= xs.min() and xs.max() <= ox.max()

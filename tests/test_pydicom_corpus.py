"""Every file of pydicom's own test corpus (real-world files from many vendors) either loads
(headers and the first slices' pixels) or gives one of our clear errors; nothing else escapes."""

import warnings
from collections import Counter

import pydicom.data
import pytest

from tfesi_desktop.core.dicom import modality_values, scan
from tfesi_desktop.core.errors import TfesiError


def _outcome(path: str) -> str:
    try:
        res = scan(path)
    except TfesiError as e:
        assert e.message and e.message[0].isupper()
        return "no image"
    if res.skipped:
        return "skipped"
    for stack in res.stacks:
        for ref in stack.slices[:2]:
            try:
                modality_values(ref)
            except TfesiError as e:
                assert "cannot be decoded" in e.message or "Unexpected" in e.message
                return "decode error"
    return "loaded"


def test_every_corpus_file_loads_or_gives_a_clear_error():
    files = pydicom.data.get_testdata_files()
    assert len(files) > 150
    counts = Counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about the odd files on purpose
        for f in files:
            counts[_outcome(f)] += 1  # any other exception fails the test here
    print(dict(counts))
    assert counts["loaded"] >= 100  # 105 with pydicom 3.0.2 and the pylibjpeg plugins


@pytest.mark.parametrize("name", [
    "JPEG2000.dcm", "SC_rgb_jpeg_gdcm.dcm", "MR_small_jp2klossless.dcm",
    "MR_small_jpeg_ls_lossless.dcm", "MR_small_RLE.dcm", "SC_rgb_jpeg_dcmtk.dcm",
    "JPGExtended.dcm"])
def test_compressed_transfer_syntaxes_decode_through_pylibjpeg(name):
    path = pydicom.data.get_testdata_file(name)
    ref = scan(path).stacks[0].slices[0]
    values = modality_values(ref)
    assert values.ndim == 2 and values.std() > 0


# pydicom's axial images larger than 16 x 16 pixels: none shows a cervical spine (an abdominal MR,
# a thoracic CT, a head MR, liver CTs...). Found before core/midline.py's body-width and CT
# checks: the abdominal MR's aorta (score 0.74) and the thoracic CT's lamina (0.57).
NON_SPINE = ["examples_overlay.dcm", "CT_small.dcm", "MR_small.dcm", "liver_1frame.dcm",
             "693_J2KI.dcm", "J2K_pixelrep_mismatch.dcm"]


@pytest.mark.parametrize("name", NON_SPINE + ["noise", "uniform"])
def test_no_canal_on_images_without_a_cervical_spine(name):
    import numpy as np

    from tfesi_desktop.core.geometry import SliceGeometry
    from tfesi_desktop.core.midline import find_canal

    if name in ("noise", "uniform"):
        values = (np.random.default_rng(2).normal(300, 80, (320, 320)) if name == "noise"
                  else np.full((320, 320), 300.0))
        g = SliceGeometry((0, 0, 0), (1, 0, 0), (0, 1, 0), (0.6, 0.6), (320, 320))
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = scan(pydicom.data.get_testdata_file(name)).stacks[0].slices[0]
            values, g = modality_values(ref), ref.geometry
        assert g is not None and g.is_axial()
    assert find_canal(values, g) is None

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

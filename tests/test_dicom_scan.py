import gc
import shutil
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest

from tfesi_desktop.core.dicom import canonical_values, default_window, modality_values, scan
from tfesi_desktop.core.errors import (
    Cancelled,
    DicomReadError,
    InputNotFoundError,
    NoImagesError,
)
from tfesi_desktop.core.paths import demo_study


def test_demo_study_is_found_grouped_and_the_axial_t2_proposed():
    res = scan(demo_study())
    assert len(res.studies) == 1
    study = res.studies[0]
    assert study.patient_name and "SYN" in study.patient_id
    names = sorted(s.orientation_name() for s in study.stacks)
    assert names == ["axial", "sagittal"]
    proposed = res.find_stack()
    assert proposed.orientation_name() == "axial" and proposed.is_t2()
    assert len(proposed.slices) >= 12
    pos = proposed.slice_positions()
    assert np.all(np.diff(pos) > 0), "slices sorted along the normal"
    assert not res.skipped


def test_non_dicom_files_are_skipped_silently_and_broken_dicom_reported(tmp_path):
    src = demo_study()
    for f in sorted(src.iterdir())[:3]:
        shutil.copy(f, tmp_path / f.name)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "thumbs.db").write_bytes(b"\0" * 300)
    good = (tmp_path / "IM0001.dcm").read_bytes()
    (tmp_path / "broken.dcm").write_bytes(good[:600])  # header cut short
    (tmp_path / "garbage.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\xff" * 50)
    (tmp_path / "truncated.dcm").write_bytes(good[:len(good) // 2])  # pixel data cut short
    res = scan(tmp_path)
    skipped = {p.name: r for p, r in res.skipped}
    assert set(skipped) == {"broken.dcm", "garbage.dcm"}
    assert "incomplete" in skipped["broken.dcm"]
    assert all(r and r[0].isupper() for r in skipped.values())
    refs = [r for s in res.stacks for r in s.slices]
    assert len(refs) == 4
    bad = next(r for r in refs if r.path.name == "truncated.dcm")
    with pytest.raises(DicomReadError, match="cannot be decoded"):
        modality_values(bad)


def test_zip_dicomdir_and_file_list(tmp_path):
    src = demo_study()
    files = sorted(src.iterdir())
    z = tmp_path / "study.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for f in files:
            zf.write(f, f"nested/{f.name}")
    res_zip = scan(z)
    assert sum(len(s.slices) for s in res_zip.stacks) == len(files)
    # pixels decode from the unpacked copy while the result lives
    assert modality_values(res_zip.find_stack().slices[0]).shape == (256, 256)

    from pydicom.fileset import FileSet

    fs = FileSet()
    for f in files:
        fs.add(pydicom.dcmread(f))
    fs.write(tmp_path / "media")
    with warnings.catch_warnings():  # pydicom's staging folder is cleaned up implicitly
        warnings.simplefilter("ignore", ResourceWarning)
        del fs
        gc.collect()
    res_dir = scan(tmp_path / "media" / "DICOMDIR")
    assert sum(len(s.slices) for s in res_dir.stacks) == len(files)

    res_list = scan(files[:4])
    assert sum(len(s.slices) for s in res_list.stacks) == 4


def test_errors_for_missing_or_empty_input(tmp_path):
    with pytest.raises(InputNotFoundError, match="does not exist"):
        scan(tmp_path / "nope")
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(NoImagesError, match="No DICOM images"):
        scan(tmp_path)


def test_progress_and_cancel():
    calls = []
    scan(demo_study(), progress=lambda d, t: calls.append((d, t)))
    assert calls[-1][0] == calls[-1][1] > 0
    with pytest.raises(Cancelled):
        scan(demo_study(), cancel=lambda: True)


def _copy_with(tmp_path: Path, edit, name="edited") -> Path:
    out = tmp_path / name
    out.mkdir()
    for f in sorted(demo_study().iterdir()):
        ds = pydicom.dcmread(f)
        edit(ds)
        ds.save_as(out / f.name)
    return out


def test_series_split_into_stacks_when_matrix_differs(tmp_path):
    def edit(ds):
        if ds.SeriesDescription.startswith("T2 TSE AX") and ds.InstanceNumber % 2:
            ds.decompress()
            arr = ds.pixel_array[::2, ::2].copy()
            ds.Rows, ds.Columns = arr.shape
            ds.PixelData = arr.tobytes()
    res = scan(_copy_with(tmp_path, edit))
    axial = [s for s in res.stacks if s.orientation_name() == "axial"]
    assert len(axial) == 2 and all(s.split for s in axial)
    assert "split" in axial[0].warnings[0]


def test_duplicate_and_gap_warnings(tmp_path):
    def edit(ds):
        if ds.SeriesDescription.startswith("T2 TSE AX"):
            if ds.InstanceNumber >= 8:
                p = list(ds.ImagePositionPatient)
                p[2] += 10.0  # a gap of 10 mm after slice 7
                ds.ImagePositionPatient = p
    res = scan(_copy_with(tmp_path, edit))
    axial = res.find_stack()
    assert any("Gap" in w for w in axial.warnings)

    # the same position twice (a repeated acquisition with a new instance UID)
    out2 = tmp_path / "dup"
    out2.mkdir()
    src = sorted(demo_study().iterdir())
    for f in src:
        shutil.copy(f, out2 / f.name)
    ds = pydicom.dcmread(src[1])
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.save_as(out2 / "copy.dcm")
    assert any("duplicates" in w for w in scan(out2).find_stack().warnings)


def test_instance_number_is_only_a_fallback(tmp_path):
    def edit(ds):
        ds.InstanceNumber = 100 - int(ds.InstanceNumber)  # reversed numbering
    res = scan(_copy_with(tmp_path, edit))
    assert np.all(np.diff(res.find_stack().slice_positions()) > 0)

    def no_geometry(ds):
        del ds.ImagePositionPatient
        del ds.ImageOrientationPatient
    res2 = scan(_copy_with(tmp_path, no_geometry, "no-geometry"))
    st = max(res2.stacks, key=lambda s: len(s.slices))
    numbers = [pydicom.dcmread(s.path, stop_before_pixels=True).InstanceNumber for s in st.slices]
    assert numbers == sorted(numbers)
    assert any("instance number" in w for w in st.warnings)


def test_default_window_from_tags_or_percentiles():
    res = scan(demo_study())
    stack = res.find_stack()
    c, w = default_window(stack)
    vals = modality_values(stack.slices[len(stack.slices) // 2])
    assert w > 0 and vals.min() <= c <= vals.max()


def test_canonical_values_are_read_only_and_cached():
    ref = scan(demo_study()).find_stack().slices[0]
    a, b = modality_values(ref), modality_values(ref)
    assert a is b and not a.flags.writeable
    assert canonical_values(ref).shape == a.shape

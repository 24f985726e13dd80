"""Hardened inputs and outputs (issue 12): hostile files, escapes, tampering, exit codes."""

import gc
import json
import os
import shutil
import stat
import sys
import tempfile
import threading
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest

from tfesi_desktop.cli import main
from tfesi_desktop.core.dicom import modality_values, scan
from tfesi_desktop.core.dicom import reader as dicom_reader
from tfesi_desktop.core.errors import (
    Cancelled,
    DicomReadError,
    GeometryError,
    NoImagesError,
    TfesiError,
)
from tfesi_desktop.core.fileio import TEMP_MARK
from tfesi_desktop.core.manifest import read_manifest
from tfesi_desktop.core.paths import demo_manifest, demo_study

posix = pytest.mark.skipif(sys.platform == "win32", reason="POSIX only")
# pydicom warns about damaged files on purpose; here the program must cope as it does for users
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def case():
    (c,) = read_manifest(demo_manifest())
    return c


def _predict_args(case, *extra):
    return ["predict", str(demo_study()), "--slice", case.slice_key, "--roi",
            ",".join(map(str, case.roi)), "--side", case.side, *extra]


def _one_error_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "internal error" not in lines[0] and "Traceback" not in err
    return lines[0]


# --- outputs ---------------------------------------------------------------------------------

def test_heatmap_into_a_missing_folder_or_onto_a_folder_is_exit_2(case, tmp_path, capsys):
    assert main(_predict_args(case, "--heatmap", str(tmp_path / "no" / "h.png"))) == 2
    assert "does not exist" in _one_error_line(capsys.readouterr().err)
    (tmp_path / "d").mkdir()
    assert main(_predict_args(case, "--heatmap", str(tmp_path / "d"))) == 2
    _one_error_line(capsys.readouterr().err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]  # no d.partial left
    assert list((tmp_path / "d").iterdir()) == []


@posix
def test_heatmap_is_private_and_leaves_no_temporary(case, tmp_path, capsys):
    png = tmp_path / "h.png"
    assert main(_predict_args(case, "--heatmap", str(png))) == 0
    assert stat.S_IMODE(png.stat().st_mode) == 0o600
    assert not [p for p in tmp_path.iterdir() if TEMP_MARK in p.name or "partial" in p.name]


# --- inputs: a scan that survives any one file -------------------------------------------------



@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """The demo's 12 axial slices, uncompressed (Explicit VR Little Endian)."""
    out = tmp_path_factory.mktemp("plain")
    for f in sorted(demo_study().iterdir())[:12]:
        ds = pydicom.dcmread(f)
        ds.decompress()
        ds.save_as(out / f.name)
    return out


def _copy(plain, tmp_path, name="study") -> Path:
    d = tmp_path / name
    shutil.copytree(plain, d)
    return d


def _edit(path: Path, edit) -> None:
    ds = pydicom.dcmread(path)
    edit(ds)
    ds.save_as(path)


def _raw(ds, tag: int, vr: str, value: bytes) -> None:
    """Put bytes into an element as they are, as a damaged file holds them."""
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag

    ds._dict[Tag(tag)] = RawDataElement(Tag(tag), vr, len(value), value, 0, False, True)


def _skipped(res) -> dict:
    return {p.name: r for p, r in res.skipped}


def _slices(res) -> int:
    return sum(len(s.slices) for s in res.stacks)


def test_a_bad_value_in_one_header_skips_that_file_only(plain, tmp_path):
    d = _copy(plain, tmp_path)
    raw = bytearray((d / "IM0003.dcm").read_bytes())
    ds = pydicom.dcmread(d / "IM0003.dcm")
    uid = str(ds.SeriesInstanceUID).encode()
    i = raw.index(b"\x20\x00\x0e\x00UI")  # (0020,000E) Series Instance UID, explicit VR
    raw[i + 4:i + 6] = b"UM"  # a VR pydicom does not know: fails on first use of the value
    (d / "IM0003.dcm").write_bytes(bytes(raw))
    assert uid in raw
    _edit(d / "IM0004.dcm", lambda ds: _raw(ds, 0x00200011, "IS", b"abc "))  # SeriesNumber
    res = scan(d)
    skipped = _skipped(res)
    assert set(skipped) == {"IM0003.dcm", "IM0004.dcm"}, skipped
    assert all(r[0].isupper() for r in skipped.values())
    assert _slices(res) == 10


def test_number_of_frames_is_checked_against_the_pixel_data(plain, tmp_path):
    d = _copy(plain, tmp_path)
    _edit(d / "IM0005.dcm", lambda ds: setattr(ds, "NumberOfFrames", 2_000_000_000))
    _edit(d / "IM0006.dcm", lambda ds: setattr(ds, "Columns", 257))  # shorter than declared
    _edit(d / "IM0007.dcm", lambda ds: setattr(ds, "Rows", 255))  # longer than declared
    res = scan(d)  # at once: nothing is allocated for 2e9 frames
    skipped = _skipped(res)
    assert set(skipped) == {"IM0005.dcm", "IM0006.dcm"}
    assert "2000000000 frame(s)" in skipped["IM0005.dcm"]
    ref = next(r for s in res.stacks for r in s.slices if r.path.name == "IM0007.dcm")
    assert modality_values(ref).shape == (255, 256)  # still viewable...
    with pytest.raises(DicomReadError, match="pixel data hold"):
        ref.require_geometry()  # ...but no prediction from it
    stack = next(s for s in res.stacks if ref in s.slices)
    assert any("pixel data hold" in w for w in stack.warnings)


def test_compressed_frames_are_bounded_too(tmp_path):
    f = tmp_path / "a.dcm"
    shutil.copy(sorted(demo_study().iterdir())[0], f)  # RLE
    _edit(f, lambda ds: setattr(ds, "NumberOfFrames", 30_000_000))
    with pytest.raises(NoImagesError, match="30000000 frames"):
        scan(f)


@posix
def test_special_files_never_hang(plain, tmp_path):
    d = _copy(plain, tmp_path)
    os.mkfifo(d / "pipe.dcm")
    res = []
    t = threading.Thread(target=lambda: res.append(scan(d)), daemon=True)
    t.start()
    t.join(20)
    assert not t.is_alive(), "the scan blocked on a FIFO"
    assert "not a regular file" in _skipped(res[0])["pipe.dcm"]
    assert _slices(res[0]) == 12
    out = []
    t = threading.Thread(target=lambda: out.append(_try_scan("/dev/zero")), daemon=True)
    t.start()
    t.join(20)
    assert not t.is_alive(), "the scan read /dev/zero"
    assert isinstance(out[0], NoImagesError) and "not a regular file" in out[0].message


def _try_scan(p):
    try:
        return scan(p)
    except TfesiError as e:
        return e


@posix
def test_unreadable_files_and_folders_are_listed_not_dropped(plain, tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads everything")
    d = _copy(plain, tmp_path)
    os.chmod(d / "IM0008.dcm", 0)
    sub = d / "more"
    sub.mkdir()
    os.chmod(sub, 0)
    try:
        res = scan(d)
    finally:
        os.chmod(sub, 0o700)
        os.chmod(d / "IM0008.dcm", 0o600)
    skipped = _skipped(res)
    assert "cannot be opened" in skipped["IM0008.dcm"] and "more" in skipped


@posix
def test_unopenable_files_are_listed_as_root_too(plain, tmp_path):
    d = _copy(plain, tmp_path)
    (d / "dangling.dcm").symlink_to(tmp_path / "nowhere")
    res = scan(d)
    assert "leads nowhere" in _skipped(res)["dangling.dcm"]


@posix
def test_symlink_loops_and_deep_folders(plain, tmp_path):
    d = _copy(plain, tmp_path)
    (d / "loop").symlink_to(d)
    _deep(d, 1500)
    res = scan(d)
    assert _slices(res) == 12
    reasons = " ".join(r for _, r in res.skipped)
    assert "loop" in reasons and "nested more than" in reasons
    assert main(["info", str(d)]) == 0
    _deep(d, 1500, remove=True)  # (shutil.rmtree recurses, and would fail at this depth)


def _deep(d: Path, levels: int, *, remove: bool = False) -> None:
    """Make (or remove) d/a/a/.../a, ``levels`` deep, relative step by step (PATH_MAX)."""
    cwd = os.getcwd()
    try:
        os.chdir(d)
        if not remove:
            for _ in range(levels):
                os.mkdir("a")
                os.chdir("a")
            return
        n = 0
        while os.path.isdir("a"):
            os.chdir("a")
            n += 1
        for _ in range(n):
            os.chdir("..")
            os.rmdir("a")
    finally:
        os.chdir(cwd)


def test_dicomdir_references_cannot_escape(plain, tmp_path):
    from pydicom.fileset import FileSet

    media = tmp_path / "media"
    fs = FileSet()
    for f in sorted(plain.iterdir())[:3]:
        fs.add(pydicom.dcmread(f))
    fs.write(media)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        del fs
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(plain / "IM0010.dcm", outside / "secret.dcm")
    dd = pydicom.dcmread(media / "DICOMDIR")
    recs = [r for r in dd.DirectoryRecordSequence if "ReferencedFileID" in r]
    recs[0].ReferencedFileID = ["..", "outside", "secret.dcm"]
    recs[1].ReferencedFileID = str(outside / "secret.dcm")
    dd.save_as(media / "DICOMDIR")
    res = scan(media / "DICOMDIR")
    assert _slices(res) == 1
    assert [r for _, r in res.skipped if "outside its folder" in r] and len(res.skipped) == 2
    if sys.platform != "win32":  # and through a symlink inside the media folder
        link_target = [r for r in dd.DirectoryRecordSequence if "ReferencedFileID" in r][2]
        real = media.joinpath(*link_target.ReferencedFileID)
        real.unlink()
        real.symlink_to(outside / "secret.dcm")
        with pytest.raises(NoImagesError, match="outside its folder"):
            scan(media / "DICOMDIR")


def _zip_dirs():
    return set(Path(tempfile.gettempdir()).glob(f"tfesi-zip-{os.getpid()}-*"))


def test_zip_limits_zip_slip_and_temporary_folders(plain, tmp_path, monkeypatch):
    before = _zip_dirs()
    files = sorted(plain.iterdir())
    slip = tmp_path / "slip.zip"
    with zipfile.ZipFile(slip, "w") as z:
        z.write(files[0], "ok/IM0001.dcm")
        z.writestr("../../evil.dcm", b"x")
        z.writestr("/abs/evil.dcm", b"x")
    res = scan(slip)
    assert _slices(res) == 1
    assert sum("outside its folder" in r for _, r in res.skipped) == 2
    assert not (tmp_path.parent / "evil.dcm").exists()
    assert len(_zip_dirs() - before) == 1
    del res
    gc.collect()
    assert _zip_dirs() == before  # removed when the result is released

    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("zeros.dcm", b"\0" * (64 << 20))
    with pytest.raises(NoImagesError, match="ZIP bomb"):
        scan(bomb)
    monkeypatch.setattr(dicom_reader, "ZIP_MAX_TOTAL", 1000)
    with pytest.raises(NoImagesError, match="more than"):
        scan(slip)
    monkeypatch.undo()
    monkeypatch.setattr(dicom_reader, "ZIP_MAX_ENTRIES", 2)
    with pytest.raises(NoImagesError, match="holds 3 files"):
        scan(slip)
    monkeypatch.undo()

    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as z:
        z.writestr("readme.txt", b"no image here")
    with pytest.raises(NoImagesError):
        scan(empty)
    with pytest.raises(Cancelled):
        scan(slip, cancel=lambda: True)
    assert _zip_dirs() == before  # no image, error and cancel leave nothing behind


def test_stale_zip_folders_of_dead_processes_are_removed(tmp_path):
    stale = Path(tempfile.mkdtemp(prefix="tfesi-zip-999999999-"))
    files = sorted(demo_study().iterdir())
    z = tmp_path / "s.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.write(files[0], files[0].name)
    scan(z)
    assert not stale.exists()


def _geometry_case(plain, tmp_path, edit):
    d = _copy(plain, tmp_path, f"g{len(list(tmp_path.iterdir()))}")
    _edit(d / "IM0006.dcm", edit)
    res = scan(d)
    assert _slices(res) == 12
    return res, next(r for s in res.stacks for r in s.slices if r.path.name == "IM0006.dcm")


@pytest.mark.parametrize("edit, match", [
    (lambda ds: _raw(ds, 0x00200032, "DS", b"nan\\0\\0 "), "finite"),
    (lambda ds: _raw(ds, 0x00200037, "DS", b"1\\0\\0\\0\\inf\\0 "), "finite"),
    (lambda ds: setattr(ds, "ImageOrientationPatient", [0, 0, 0, 0, 1, 0]), "zero direction"),
    (lambda ds: setattr(ds, "ImageOrientationPatient", [1, 0, 0, 1, 0, 0]), "same direction"),
    (lambda ds: setattr(ds, "ImageOrientationPatient", [1, 0, 0, 0.5, 0.866, 0]),
     "not orthonormal"),
    (lambda ds: setattr(ds, "ImageOrientationPatient", [0.5, 0, 0, 0, 1, 0]), "not orthonormal"),
    (lambda ds: setattr(ds, "PixelSpacing", [-0.7, 0.7]), "PixelSpacing"),
    (lambda ds: setattr(ds, "PixelSpacing", [0, 0.7]), "PixelSpacing"),
])
def test_unsound_geometry_is_refused_for_prediction(plain, tmp_path, edit, match):
    res, ref = _geometry_case(plain, tmp_path, edit)
    with pytest.raises(GeometryError, match=match):
        ref.require_geometry()
    assert modality_values(ref).shape == (256, 256)  # still shown
    assert any(match in w for s in res.stacks for w in s.warnings)


def _reject_constant(name):
    raise ValueError(f"not JSON: {name}")


def test_nan_geometry_gives_strict_json_and_predict_exit_2(plain, tmp_path, capsys, case):
    d = _copy(plain, tmp_path)
    for f in d.iterdir():
        _edit(f, lambda ds: _raw(ds, 0x00200032, "DS", b"nan\\inf\\-inf "))
    assert main(["info", "--json", str(d)]) == 0
    out = json.loads(capsys.readouterr().out, parse_constant=_reject_constant)
    assert out["studies"][0]["series"][0]["warnings"]
    uid = pydicom.dcmread(d / "IM0006.dcm").SOPInstanceUID
    rc = main(["predict", str(d), "--slice", uid, "--roi", ",".join(map(str, case.roi)),
               "--side", case.side])
    assert rc == 2
    assert "finite" in _one_error_line(capsys.readouterr().err)


def test_nan_rescale_is_a_clear_skip(plain, tmp_path):
    d = _copy(plain, tmp_path)
    _edit(d / "IM0002.dcm", lambda ds: _raw(ds, 0x00281053, "DS", b"nan "))  # RescaleSlope
    res = scan(d)
    assert "finite" in _skipped(res)["IM0002.dcm"]


def test_mixed_modalities_are_flagged(plain, tmp_path):
    d = _copy(plain, tmp_path)
    _edit(d / "IM0002.dcm", lambda ds: setattr(ds, "Modality", "CT"))
    res = scan(d)
    assert any("mixes modalities (CT, MR)" in w for s in res.stacks for w in s.warnings)


@posix
def test_a_hostile_file_name_still_gives_one_error_line(tmp_path, capsys):
    (tmp_path / "evil\nname\r.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\xff" * 40)
    assert main(["info", "--json", str(tmp_path)]) == 2
    assert "\\n" in _one_error_line(capsys.readouterr().err)


def test_a_deflate_bomb_is_refused_and_a_deflated_image_still_read(plain, tmp_path):
    """pydicom inflates a deflated dataset whole in memory: a file of about 100 KiB that
    inflates to 100 MiB is skipped with the reason, before pydicom reads it; an ordinary
    deflated image is read and decoded as before."""
    import zlib

    from pydicom.uid import DeflatedExplicitVRLittleEndian

    d = tmp_path / "study"
    d.mkdir()
    ds = pydicom.dcmread(plain / "IM0001.dcm")
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(d / "deflated.dcm", enforce_file_format=True)
    raw = (d / "deflated.dcm").read_bytes()
    with open(d / "deflated.dcm", "rb") as f:
        start = dicom_reader._file_meta_end(f)
    dataset = zlib.decompress(raw[start:], -zlib.MAX_WBITS)
    # the same dataset followed by a private element of 100 MiB of zeros
    pack = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    parts = [pack.compress(dataset + b"\xe1\x7f\x10\x00OB\x00\x00" + (100 << 20).to_bytes(4,
                                                                                 "little"))]
    zeros = bytes(1 << 20)
    parts += [pack.compress(zeros) for _ in range(100)] + [pack.flush()]
    (d / "bomb.dcm").write_bytes(raw[:start] + b"".join(parts))
    assert (d / "bomb.dcm").stat().st_size < 200_000

    res = scan(d)
    assert _slices(res) == 1
    assert "deflate-compressed file would inflate to more than" in _skipped(res)["bomb.dcm"]
    (ref,) = res.stacks[0].slices
    assert ref.path.name == "deflated.dcm"
    np.testing.assert_array_equal(modality_values(ref),
                                  modality_values(scan(plain).stacks[0].slices[0]))


@posix
def test_folder_links_out_of_the_folder_or_to_an_ancestor_are_not_followed(plain, tmp_path,
                                                                           capsys):
    """Issue 21, item 9: a link to / made `tfesi info` walk the whole file system."""
    import time

    d = _copy(plain, tmp_path)
    outside = tmp_path / "outside"
    shutil.copytree(d, outside)  # 12 more slices that must not be read
    (d / "root").symlink_to("/")
    (d / "up").symlink_to("..")
    (d / "sub").mkdir()
    (d / "sub" / "back").symlink_to(d)
    (d / "away").symlink_to(outside)
    (d / "inside").symlink_to(d / "sub")  # stays inside: followed (nothing new there)
    t0 = time.monotonic()
    res = scan(d)
    assert time.monotonic() - t0 < 5
    assert _slices(res) == 12
    why = _skipped(res)
    assert "outside the folder given" in why["root"] and "outside" in why["away"]
    assert "outside the folder given" in why["up"]
    assert "loop" in why["back"]
    assert "outside" not in why.get("inside", "")  # followed (its folder was read already)
    assert main(["info", str(d)]) == 0
    assert "links out of it are not followed" in capsys.readouterr().out

"""PACS round trips against a real Orthanc (Debian package) on loopback, data sent with dcmtk's
storescu: find, get and move, identical pixels and UIDs, the same prediction on the retrieved
copy, results stored back and found again; a stopped PACS, a wrong AE title, an unknown move
destination and a cancel each give one sentence and import nothing."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from pydicom import dcmread

from tfesi_desktop.cli import main
from tfesi_desktop.core import pacs
from tfesi_desktop.core.errors import Cancelled
from tfesi_desktop.core.paths import demo_manifest, demo_study

ORTHANC = shutil.which("Orthanc")
STORESCU = shutil.which("storescu")
DSRDUMP = shutil.which("dsrdump")
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
N_DEMO = len([p for p in demo_study().iterdir() if p.is_file()])  # instances in the demo study
pytestmark = pytest.mark.skipif(
    not (ORTHANC and STORESCU),
    reason="needs Orthanc and dcmtk (Debian packages orthanc, dcmtk: scripts/system-deps.sh)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Orthanc:
    proc: subprocess.Popen
    port: int
    http_port: int
    move_port: int
    folder: Path

    @property
    def address(self) -> str:
        return f"ORTHANC@127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/dicom-web"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_orthanc(folder: Path) -> Orthanc:
    """An unprivileged Orthanc on free loopback ports with its own configuration and storage;
    it knows this program as TFESI at a free port (for C-MOVE) and checks the called AE title."""
    folder.mkdir(parents=True, exist_ok=True)
    port, http_port, move_port = _free_port(), _free_port(), _free_port()
    cfg = {
        "Name": "tfesi-test", "DicomAet": "ORTHANC", "DicomPort": port, "HttpPort": http_port,
        "StorageDirectory": str(folder / "db"), "IndexDirectory": str(folder / "db"),
        "RemoteAccessAllowed": False, "AuthenticationEnabled": False,
        "DicomAlwaysAllowGet": True, "DicomAlwaysAllowMove": True,
        "DicomAlwaysAllowStore": True, "DicomAlwaysAllowEcho": True,
        "DicomAlwaysAllowFind": True,
        "DicomCheckCalledAet": True,
        "DicomModalities": {"tfesi": ["TFESI", "127.0.0.1", move_port]},
        "Plugins": [str(DICOMWEB_PLUGIN)] if DICOMWEB_PLUGIN.exists() else [],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
    }
    (folder / "cfg.json").write_text(json.dumps(cfg))
    with open(folder / "orthanc.log", "wb") as log:  # the child keeps its own handle
        proc = subprocess.Popen([ORTHANC, str(folder / "cfg.json")], stdout=log,
                                stderr=subprocess.STDOUT, cwd=folder)
    server = Orthanc(proc, port, http_port, move_port, folder)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"Orthanc exited: {(folder / 'orthanc.log').read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2), \
                    socket.create_connection(("127.0.0.1", http_port), timeout=0.2):
                return server
        except OSError:
            time.sleep(0.05)
    server.stop()
    raise RuntimeError("Orthanc did not start within 15 s")


def storescu(server: Orthanc, files) -> None:
    subprocess.run([STORESCU, "-xr", "-aec", "ORTHANC", "127.0.0.1", str(server.port),
                    *map(str, files)], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory):
    server = start_orthanc(tmp_path_factory.mktemp("orthanc"))
    try:
        storescu(server, sorted(demo_study().glob("*.dcm")))
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def demo_case():
    from tfesi_desktop.core.manifest import read_manifest

    (case,) = read_manifest(demo_manifest())
    first = next(p for p in sorted(demo_study().iterdir()) if p.is_file())
    return SimpleNamespace(**{k: getattr(case, k) for k in (
        "patient_id", "series_uid", "slice_key", "roi", "side", "level")},
        study_uid=case.row["study_uid"],
        study_date=str(dcmread(first, stop_before_pixels=True).StudyDate))


def _cli(capsys, *argv) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def _note(capsys, text: str) -> None:
    """A measured number for the closing note (shown with -s)."""
    with capsys.disabled():
        print(f"\n{text}")


def _leftovers(folder: Path) -> list[Path]:
    return list(folder.glob(".incoming-*")) if folder.exists() else []


# --- query ------------------------------------------------------------------------------------

def test_echo_and_find(orthanc, demo_case, capsys):
    rc, out, _ = _cli(capsys, "pacs", "echo", "--pacs", orthanc.address)
    assert rc == 0 and "OK" in out
    rc, out, _ = _cli(capsys, "pacs", "find", "--pacs", orthanc.address, "--patient-id",
                      demo_case.patient_id, "--study-date",
                      f"{demo_case.study_date[:4]}0101-{demo_case.study_date[:4]}1231",
                      "--modality", "MR", "--json")
    assert rc == 0
    (study,) = json.loads(out)
    assert study["study_uid"] == demo_case.study_uid and study["instances"] == N_DEMO
    assert study["patient_name"] and study["modalities"] == ["MR"]
    assert pacs.find_studies(orthanc.address, patient_name="NOBODY*") == []
    assert pacs.find_studies(orthanc.address, study_date="2019-01-01-2019-12-31") == []
    series = pacs.find_series(orthanc.address, demo_case.study_uid)
    assert demo_case.series_uid in {s["series_uid"] for s in series}
    patients = pacs.find_patients(pacs.resolve(orthanc.address),
                                  patient_id=demo_case.patient_id)
    assert [p["patient_id"] for p in patients] == [demo_case.patient_id]


def test_nodes_are_private_settings(orthanc, capsys):
    rc, out, _ = _cli(capsys, "pacs", "nodes", "add", "hospital", orthanc.address)
    assert rc == 0
    f = Path(os.environ["TFESI_HOME"]) / "config" / "pacs_nodes.json"
    assert f.stat().st_mode & 0o777 == 0o600
    rc, out, _ = _cli(capsys, "pacs", "echo", "--pacs", "hospital", "--json")
    assert rc == 0 and json.loads(out)["ok"] is True
    rc, out, _ = _cli(capsys, "pacs", "nodes", "list", "--json")
    assert json.loads(out)[0]["port"] == orthanc.port
    rc, _, err = _cli(capsys, "pacs", "nodes", "add", "hospital", orthanc.address)
    assert rc == 2 and "exists already" in err
    rc, _, _ = _cli(capsys, "pacs", "nodes", "remove", "hospital")
    rc, _, err = _cli(capsys, "pacs", "echo", "--pacs", "hospital")
    assert rc == 2 and err.startswith("error: No PACS node is named 'hospital'")
    rc, _, err = _cli(capsys, "pacs", "echo", "--pacs", "ORTHANC@localhost")
    assert rc == 2 and "AET@HOST:PORT" in err


# --- retrieve ---------------------------------------------------------------------------------

def _same_study(a: Path, b: Path) -> None:
    fa = {dcmread(f).SOPInstanceUID: f for f in a.rglob("*.dcm")}
    fb = {dcmread(f).SOPInstanceUID: f for f in b.rglob("*.dcm")}
    assert set(fa) == set(fb) and len(fa) == N_DEMO
    for uid, f in fa.items():
        da, db = dcmread(f), dcmread(fb[uid])
        assert (da.StudyInstanceUID, da.SeriesInstanceUID) == (db.StudyInstanceUID,
                                                                db.SeriesInstanceUID)
        assert np.array_equal(da.pixel_array, db.pixel_array)


def test_get_into_the_cache_gives_the_same_images_and_prediction(orthanc, demo_case, capsys):
    seen = []
    got = pacs.retrieve(orthanc.address, demo_case.study_uid,
                        progress=lambda d, t: seen.append((d, t)))
    assert got.path == pacs.study_cache_dir(demo_case.study_uid) and got.instances == N_DEMO
    assert got.path.parent.stat().st_mode & 0o777 == 0o700
    assert seen[0] == (0, N_DEMO) and seen[-1] == (N_DEMO, N_DEMO)
    _same_study(demo_study(), got.path)
    _note(capsys, f"C-GET of the demo study ({N_DEMO} instances): {got.seconds:.3f} s")

    args = ["--slice", demo_case.slice_key, "--roi", ",".join(map(str, demo_case.roi)),
            "--side", demo_case.side, "--level", demo_case.level, "--json"]
    rc, here, _ = _cli(capsys, "predict", demo_study(), *args)
    rc2, there, _ = _cli(capsys, "predict", got.path, *args)
    assert rc == rc2 == 0
    a, b = json.loads(here), json.loads(there)
    assert a["probability_favourable"] == b["probability_favourable"]
    assert a["interval"] == b["interval"]
    assert (a["sop_instance_uid"], a["series_uid"]) == (b["sop_instance_uid"], b["series_uid"])


def test_get_one_series_by_cli_and_move(orthanc, demo_case, tmp_path, capsys):
    out = tmp_path / "one"
    rc, stdout, _ = _cli(capsys, "pacs", "get", demo_case.study_uid, "--pacs", orthanc.address,
                         "--out", out, "--series", demo_case.series_uid, "--json")
    assert rc == 0 and json.loads(stdout)["instances"] == 12
    assert {p.name for p in out.iterdir()} == {demo_case.series_uid}
    moved = pacs.retrieve(orthanc.address, demo_case.study_uid, tmp_path / "moved",
                          method="move", move_port=orthanc.move_port)
    assert moved.instances == N_DEMO
    _same_study(demo_study(), moved.path)
    _note(capsys, f"C-MOVE of the demo study: {moved.seconds:.3f} s")


@pytest.mark.skipif(not DICOMWEB_PLUGIN.exists(), reason="Orthanc's DICOMweb plugin "
                    "(Debian package orthanc-dicomweb) is not installed")
def test_dicomweb_find_retrieve_store(orthanc, demo_case, tmp_path, capsys):
    (study,) = pacs.find_studies(orthanc.url, patient_id=demo_case.patient_id)
    assert study["study_uid"] == demo_case.study_uid
    got = pacs.retrieve(orthanc.url, demo_case.study_uid, tmp_path / "web")
    _same_study(demo_study(), got.path)
    _note(capsys, f"WADO-RS of the demo study: {got.seconds:.3f} s")


# --- results back into the study --------------------------------------------------------------

def test_results_are_stored_back_into_the_study(orthanc, demo_case, tmp_path, capsys):
    got = pacs.retrieve(orthanc.address, demo_case.study_uid, tmp_path / "study")
    pdf = tmp_path / "report.pdf"
    rc, out, err = _cli(capsys, "report", got.path, "--slice", demo_case.slice_key, "--roi",
                        ",".join(map(str, demo_case.roi)), "--side", demo_case.side,
                        "--level", demo_case.level, "--out", pdf, "--dicom",
                        "--sr", tmp_path / "sr.dcm", "--sc", tmp_path / "sc.dcm")
    assert rc == 0, err
    files = [tmp_path / "report.dcm", tmp_path / "sr.dcm", tmp_path / "sc.dcm"]
    if DSRDUMP:
        dump = subprocess.run([DSRDUMP, str(tmp_path / "sr.dcm")], capture_output=True,
                              text=True, check=True).stdout
        assert "Imaging Measurement Report" in dump and "UNVERIFIED" in dump
    rc, out, err = _cli(capsys, "pacs", "store", *files, "--pacs", orthanc.address)
    assert rc == 0 and "3 files stored" in out, err
    series = pacs.find_series(orthanc.address, demo_case.study_uid)
    by_uid = {s["series_uid"]: s for s in series}
    for f in files:
        ds = dcmread(f, stop_before_pixels=True)
        assert ds.StudyInstanceUID == demo_case.study_uid
        assert ds.SeriesInstanceUID in by_uid  # found again by C-FIND, in the same study
    mods = {s["modality"] for s in series}
    assert {"SR", "DOC", "MR"} <= mods
    descriptions = " ".join(s["description"] or "" for s in series)
    assert "NOT FOR CLINICAL USE" in descriptions  # the demo model says so


# --- failures ---------------------------------------------------------------------------------

def test_stopped_pacs_is_a_clear_error_within_10_s(tmp_path, demo_case, capsys):
    server = start_orthanc(tmp_path / "short-lived")
    assert pacs.echo(pacs.resolve(server.address)) > 0
    server.stop()
    t0 = time.monotonic()
    rc, _, err = _cli(capsys, "pacs", "get", demo_case.study_uid, "--pacs", server.address,
                      "--out", tmp_path / "none")
    assert time.monotonic() - t0 < 10
    assert rc == 2 and err.startswith("error: Cannot reach the PACS") and "not running" in err
    assert "Traceback" not in err and not (tmp_path / "none").exists()
    assert not _leftovers(tmp_path)


def test_wrong_ae_title_is_refused(orthanc, capsys):
    rc, _, err = _cli(capsys, "pacs", "find", "--pacs",
                      f"NOTORTHANC@127.0.0.1:{orthanc.port}")
    assert rc == 2 and "refused the association" in err and "NOTORTHANC" in err


def test_missing_study_and_unknown_move_destination(orthanc, demo_case, tmp_path, capsys):
    rc, _, err = _cli(capsys, "pacs", "get", "1.2.3.4", "--pacs", orthanc.address,
                      "--out", tmp_path / "x")
    assert rc == 2 and "is not on the PACS" in err
    rc, _, err = _cli(capsys, "pacs", "get", demo_case.study_uid, "--pacs", orthanc.address,
                      "--out", tmp_path / "y", "--move", "--aet", "STRANGER",
                      "--move-port", str(_free_port()))
    assert rc == 2 and "error:" in err and "destination" in err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    assert not _leftovers(tmp_path)


def test_cancel_mid_retrieval_leaves_nothing(orthanc, demo_case, tmp_path):
    seen = []
    dest = tmp_path / "cancelled"
    with pytest.raises(Cancelled):
        pacs.retrieve(orthanc.address, demo_case.study_uid, dest,
                      progress=lambda d, t: seen.append(d), cancel=lambda: len(seen) > 3)
    assert 0 < max(seen) < N_DEMO  # it was stopped in the middle
    assert not dest.exists() and not _leftovers(tmp_path)
    # an earlier copy is left as it was
    got = pacs.retrieve(orthanc.address, demo_case.study_uid, dest,
                        series_uid=demo_case.series_uid)
    before = sorted(got.path.rglob("*.dcm"))
    seen.clear()
    with pytest.raises(Cancelled):
        pacs.retrieve(orthanc.address, demo_case.study_uid, dest,
                      progress=lambda d, t: seen.append(d), cancel=lambda: len(seen) > 3)
    assert sorted(dest.rglob("*.dcm")) == before and not _leftovers(tmp_path)


# --- the dialog -------------------------------------------------------------------------------

def test_dialog_searches_groups_and_opens_the_retrieved_study(orthanc, demo_case, qtbot):
    from tfesi_desktop.gui.pacs_dialog import PacsDialog

    opened = []
    dlg = PacsDialog(None, opened.append)
    qtbot.addWidget(dlg)
    dlg.pacs_box.setEditText(orthanc.address)
    dlg.patient_id.setText(demo_case.patient_id)
    dlg.search()
    qtbot.waitUntil(lambda: not dlg.busy(), timeout=15000)
    assert dlg.tree.topLevelItemCount() == 1  # one patient ...
    patient = dlg.tree.topLevelItem(0)
    assert demo_case.patient_id in patient.text(0) and patient.childCount() == 1  # ... a study
    assert dlg.selected_study() == demo_case.study_uid and dlg.open_button.isEnabled()
    dlg.retrieve_selected()
    assert dlg.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: bool(opened), timeout=15000)
    assert opened == [pacs.study_cache_dir(demo_case.study_uid)]
    assert len(list(opened[0].rglob("*.dcm"))) >= N_DEMO  # with any results stored back


def test_dialog_says_a_dead_pacs_is_dead_within_10_s(qtbot):
    from tfesi_desktop.gui.pacs_dialog import PacsDialog

    dlg = PacsDialog(None, lambda p: None)
    qtbot.addWidget(dlg)
    dlg.pacs_box.setEditText(f"ORTHANC@127.0.0.1:{_free_port()}")
    t0 = time.monotonic()
    dlg.search()
    assert dlg.busy() and not dlg.search_button.isEnabled()  # the window does not wait
    qtbot.waitUntil(lambda: not dlg.busy(), timeout=10000)
    assert time.monotonic() - t0 < 10
    assert dlg.status.text().startswith("Cannot reach the PACS")
    assert dlg.search_button.isEnabled() and dlg.tree.topLevelItemCount() == 0

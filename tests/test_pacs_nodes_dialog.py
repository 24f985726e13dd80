"""PACS nodes managed in the window (issue 26, item 5): add, edit, test with C-ECHO and
remove in the Nodes dialog, remembered; the node last used selected again; "Today" and "Last 7
days" in the search; the study's own node offered when sending results back."""

from __future__ import annotations

import datetime as dt
import socket

import pytest
from pynetdicom import AE, evt
from pynetdicom.sop_class import Verification

from tfesi_desktop.core import pacs


@pytest.fixture
def echo_scp():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ae = AE(ae_title="PACS")
    ae.add_supported_context(Verification)
    server = ae.start_server(("127.0.0.1", port), block=False,
                             evt_handlers=[(evt.EVT_C_ECHO, lambda e: 0)])
    yield f"PACS@127.0.0.1:{port}"
    server.shutdown()
    ae.shutdown()


def test_nodes_are_added_tested_edited_and_removed_in_the_window(qtbot, echo_scp):
    from tfesi_desktop.gui.pacs_dialog import NodesDialog, PacsDialog

    dlg = PacsDialog(None, lambda p: None)
    qtbot.addWidget(dlg)
    dlg.manage_nodes()
    nodes = dlg.nodes_dialog
    assert isinstance(nodes, NodesDialog) and nodes.list.count() == 0
    nodes.name.setText("hospital")
    nodes.address.setText("not an address")
    nodes.save()
    assert "is not a PACS address" in nodes.status.text()  # a sentence, nothing saved
    assert pacs.load_nodes() == {}
    nodes.address.setText(echo_scp)
    nodes.save()
    assert list(pacs.load_nodes()) == ["hospital"] and nodes.list.count() == 1
    nodes.test()
    qtbot.waitUntil(lambda: nodes.worker is None, timeout=10000)
    assert nodes.status.text().startswith("The PACS answers")
    # edit: rename it and add a DICOMweb URL
    nodes.list.setCurrentRow(0)
    assert nodes.name.text() == "hospital" and nodes.address.text() == echo_scp
    nodes.name.setText("main-pacs")
    nodes.url.setText("http://127.0.0.1:1/dicom-web")
    nodes.save()
    saved = pacs.load_nodes()
    assert list(saved) == ["main-pacs"] and saved["main-pacs"].url.endswith("/dicom-web")
    nodes.accept()
    assert dlg.pacs_spec() == "main-pacs"  # the PACS box shows the saved node
    # remove
    dlg.manage_nodes()
    nodes = dlg.nodes_dialog
    nodes.list.setCurrentRow(0)
    nodes.remove()
    assert pacs.load_nodes() == {} and nodes.list.count() == 0


def test_a_dead_node_test_says_so(qtbot):
    from tfesi_desktop.gui.pacs_dialog import NodesDialog

    nodes = NodesDialog(None)
    qtbot.addWidget(nodes)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    nodes.address.setText(f"PACS@127.0.0.1:{port}")
    nodes.test()
    qtbot.waitUntil(lambda: nodes.worker is None, timeout=10000)
    assert "nothing is listening" in nodes.status.text()


def test_last_node_today_and_the_studys_own_node(qtbot, echo_scp):
    from tfesi_desktop.gui.pacs_dialog import PacsDialog, study_node

    pacs.add_node("hospital", echo_scp)
    pacs.add_node("other", "X@127.0.0.1:1")
    pacs.remember_last("hospital")
    dlg = PacsDialog(None, lambda p: None)
    qtbot.addWidget(dlg)
    assert dlg.pacs_spec() == "hospital"  # remembered from the last session
    dlg.today_button.click()
    today = dt.date.today().strftime("%Y%m%d")
    assert dlg.filters()["study_date"] == today
    dlg.week_button.click()
    week = (dt.date.today() - dt.timedelta(days=6)).strftime("%Y%m%d")
    assert dlg.filters()["study_date"] == f"{week}-{today}"
    # results are offered to the node the study came from, else the one last used
    pacs.remember_origin("1.2.3", "other")
    assert study_node("1.2.3") == "other"
    assert study_node("9.9.9") == "hospital"

"""The strip of neighbouring slices (gui/slice_strip.py) on the real widget."""

import pytest

from tfesi_desktop.core.neighbourhood import Neighbourhood

pytest.importorskip("pytestqt")


def test_strip_shows_the_slices_and_proposes_the_narrowest(qtbot, tmp_path):
    from PySide6.QtWidgets import QVBoxLayout, QWidget

    from tfesi_desktop.gui.slice_strip import SliceStrip

    panel = QWidget()  # as in the side panel: a child that hides itself
    qtbot.addWidget(panel)
    strip = SliceStrip()
    QVBoxLayout(panel).addWidget(strip)
    panel.resize(320, 200)
    panel.show()
    assert not strip.isVisible()  # nothing to show yet
    nb = Neighbourhood((4, 5, 6), (0.81, 0.62, 0.28), 5, 6, "narrowest", 0.5)
    strip.show_neighbourhood(nb)
    assert strip.isVisible() and strip.go_button.isVisible()
    assert "slice 7" in strip.message.text() and "slice 7" in strip.go_button.text()
    strip.grab().save(str(tmp_path / "strip.png"))
    assert (tmp_path / "strip.png").stat().st_size > 500
    with qtbot.waitSignal(strip.go_to_slice) as sig:
        strip.go_button.click()
    assert sig.args == [6]
    # agreeing neighbours on the chosen slice: the strip, nothing to propose, no warning
    strip.show_neighbourhood(Neighbourhood((4, 5, 6), (0.7, 0.6, 0.8), 5, 5, "narrowest", 0.5))
    assert strip.isVisible() and not strip.go_button.isVisible()
    assert not strip.message.isVisible()
    strip.show_neighbourhood(None)
    assert not strip.isVisible()

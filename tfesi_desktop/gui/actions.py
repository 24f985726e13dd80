"""The window's menus as one table: (menu, text, what it does on the :class:`Targets`,
shortcut, name, checkable). The actions act on the session (through the context) and the
controllers, never on the window (docs/architecture.md, "Session model"); shortcuts work
wherever the focus is in the window."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QMessageBox

from ..core.selection import LEVELS
from .context import AppContext

SEP = None


@dataclass
class Targets:
    """What the menu actions may act on: the context (session, model, messages, settings), the
    controllers and the viewports."""

    ctx: AppContext
    opener: object  # opening.StudyOpener
    edits: object  # edits.Edits
    nav: object  # navigation.Navigator
    viewports: object  # viewports.Viewports
    predictions: object  # prediction.PredictController
    comparison: object  # comparison.SideComparison
    report: object  # report_controller.ReportController
    axial: object  # axial.AxialViewport
    localizer: object  # localizer.Localizer
    view: object  # viewer.SliceView (the axial)
    panel: object  # side_panel.SidePanel
    values: Callable  # () -> the decoded values of the slice on the screen, or None
    warm: Callable  # () -> bool: the model worker is done (gui/startup.py)
    actions: dict[str, QAction] = field(default_factory=dict)  # filled by build_menus

    def preset_levels(self, factor: float):
        self.axial.preset_levels(factor, self.values())

    def toggle_mask(self):
        masked = self.actions["mask"].isChecked()
        self.view.set_mask_patient(masked)
        self.opener.refill(masked)

    def pan_tool(self):
        self.view.set_tool("pan")
        if self.localizer.marking:
            self.localizer.stop_marking()

    def show_help(self):
        """F1: every shortcut and mouse binding of the window, from the action table."""
        _info_box(self.ctx.parent, "Keyboard shortcuts and mouse", shortcut_sheet())

    def about_model(self):
        from .result_view import model_card_html

        predictor = self.ctx.model()
        if predictor is None:
            self.ctx.notify("The model is still loading." if not self.warm()
                            else "No model is loaded.", "info")
            return
        _info_box(self.ctx.parent, "About the model", model_card_html(predictor.bundle))


def _info_box(parent, title: str, html: str) -> QMessageBox:
    box = QMessageBox(QMessageBox.Icon.NoIcon, title, html, parent=parent)
    box.setTextFormat(Qt.TextFormat.RichText)
    box.setModal(False)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.show()
    return box


ACTIONS = {
    "&File": [
        ("Open &folder...", lambda t: t.opener.folder_dialog(), "Ctrl+O"),
        ("Open &DICOMDIR, ZIP or files...", lambda t: t.opener.files_dialog(), "Ctrl+Shift+O"),
        ("Open from &PACS...", lambda t: t.opener.from_pacs(), "Ctrl+Shift+P"),
        ("RECENT",),
        ("&Export report...", lambda t: t.report.export(), "Ctrl+E", "export"),
        SEP,
        ("&Quit", lambda t: t.ctx.parent.close(), "Ctrl+Q"),
    ],
    "&Edit": [
        ("&Undo", lambda t: t.edits.undo(), "Ctrl+Z", "undo"),
        ("&Redo", lambda t: t.edits.redo(), "Ctrl+Shift+Z", "redo"),
        SEP,
        ("&Delete ROI", lambda t: t.edits.delete_roi(), "Del", "delete_roi"),
    ],
    "&Image": [
        ("Next slice", lambda t: t.nav.step_slice(1), "Down"),
        ("Previous slice", lambda t: t.nav.step_slice(-1), "Up"),
        ("5 slices on", lambda t: t.nav.step_slice(5), "PgDown"),
        ("5 slices back", lambda t: t.nav.step_slice(-5), "PgUp"),
        ("First slice", lambda t: t.nav.set_slice(0), "Home"),
        ("Last slice", lambda t: t.nav.set_slice(10 ** 6), "End"),
        ("&Go to the ROI's slice", lambda t: t.nav.go_to_roi(), "G"),
        ("&Cine: play through the slices (again: stop)", lambda t: t.nav.toggle_cine(), "C"),
        SEP,
        ("Next series", lambda t: t.nav.step_series(1), "Ctrl+]"),
        ("Previous series", lambda t: t.nav.step_series(-1), "Ctrl+["),
        SEP,
        ("&Reset window/level", lambda t: t.preset_levels(1.0), "R"),
        ("Window: narrow (soft tissue)", lambda t: t.preset_levels(0.5), "1"),
        ("Window: series default", lambda t: t.preset_levels(1.0), "2"),
        ("Window: wide", lambda t: t.preset_levels(2.0), "3"),
        SEP,
        ("&Mask patient details", lambda t: t.toggle_mask(), "M", "mask", True),
        ("Grad-CAM &overlay", lambda t: t.panel.overlay_check.toggle(), "O"),
        ("Zoom to fit", lambda t: t.view.vb.autoRange(padding=0.02), "F"),
    ],
    "&Tools": [
        ("&Draw ROI rectangle", lambda t: t.view.set_tool("roi"), "D"),
        ("&Length (mm)", lambda t: t.view.set_tool("length"), "L"),
        ("&Angle (three clicks, vertex second)", lambda t: t.view.set_tool("angle"), "A"),
        ("Delete the selected measurement", lambda t: t.edits.delete_selected_measurement(),
         "Shift+Del"),
        ("Clear measurements on this slice", lambda t: t.edits.clear_measurements(), "Shift+L"),
        SEP,
        ("Mark disc &levels on the sagittal (C2-3 to C7-T1)",
         lambda t: t.localizer.start_marking(), "K"),
        ("Clear the disc-level marks", lambda t: t.edits.clear_marks(), "Shift+K"),
        SEP,
        ("&Scroll through slices by dragging (left button)",
         lambda t: t.view.set_tool("scroll"), "S"),
        ("Pan (Esc)", lambda t: t.pan_tool(), "Esc"),
    ],
    "&Injection": [("SIDES",), SEP, ("LEVELS",)],
    "&View": [
        ("&Axial only", lambda t: t.viewports.set_layout("axial"), "Ctrl+1", "layout_axial",
         True),
        ("Axial + &sagittal (when the study has one)",
         lambda t: t.viewports.set_layout("both"), "Ctrl+2", "layout_both", True),
        ("&Histogram (window/level)", lambda t: t.viewports.toggle_histogram(), "H"),
        SEP,
        ("&Light theme", lambda t: t.viewports.toggle_theme(), None, "light_theme", True),
    ],
    "&Model": [
        ("&Predict", lambda t: t.predictions.predict(), "Ctrl+P", "predict"),
        ("Compare &both foramina (ROI mirrored across the midline)",
         lambda t: t.comparison.compare(), "B"),
        SEP,
        ("Model &card...", lambda t: t.about_model(), None),
    ],
    "&Help": [
        ("&Keyboard shortcuts...", lambda t: t.show_help(), "F1"),
    ],
}


# as in Weasis and OHIF: left = the active tool, right = window/level, middle = pan
MOUSE = (("Left drag", "the active tool: pan (Esc), ROI (D), length (L), angle (A: three "
          "clicks), scroll through slices (S)"),
         ("Shift+left drag", "draw the ROI, whatever the tool"),
         ("Right drag", "window (horizontal) and level (vertical)"),
         ("Middle drag", "pan"),
         ("Wheel", "next / previous slice (either view)"), ("Ctrl+wheel", "zoom"),
         ("Double click", "this viewport alone (again: back)"),
         ("Click on the sagittal", "go to the nearest axial slice (K: mark a disc)"))


def build_menus(win, targets: Targets) -> dict[str, QAction]:
    """Create the menus on the main window ``win`` (their host only) from :data:`ACTIONS`,
    acting on ``targets``; returns the named actions (also in ``targets.actions``)."""
    named = targets.actions

    def add(menu, text, slot, shortcut=None, checkable=False):
        a = QAction(text, win)
        if shortcut:
            a.setShortcut(QKeySequence(shortcut))
            a.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        a.setCheckable(checkable)
        a.triggered.connect(slot)
        menu.addAction(a)
        win.addAction(a)
        return a

    for title, rows in ACTIONS.items():
        m = win.menuBar().addMenu(title)
        for row in rows:
            if row is SEP:
                m.addSeparator()
            elif row == ("RECENT",):
                win.recent_menu = m.addMenu("Open &recent")
            elif row == ("SIDES",):
                group = QActionGroup(win)
                for side, key in (("right", "Ctrl+Shift+R"), ("left", "Ctrl+Shift+L")):
                    a = add(m, f"Patient {side} side",
                            lambda _=False, s=side: targets.edits.set_side(s), key, True)
                    group.addAction(a)
                    named[f"side_{side}"] = a
            elif row == ("LEVELS",):
                for i, lev in enumerate(LEVELS):
                    add(m, f"Level {lev}",
                        lambda _=False, v=lev: targets.edits.set_level(v),
                        f"Ctrl+{5 + i}")
            else:
                text, target, shortcut, *rest = row
                name = rest[0] if rest else None
                checkable = bool(rest[1]) if len(rest) > 1 else False
                a = add(m, text, lambda _=False, f=target: f(targets), shortcut, checkable)
                if name:
                    named[name] = a
    named["layout_both"].setChecked(True)
    return named


def shortcut_sheet() -> str:
    """Every menu action with its shortcut, as an HTML table (the F1 help sheet)."""
    rows = []
    for title, entries in ACTIONS.items():
        rows.append(f"<tr><td colspan=2><b>{title.replace('&', '')}</b></td></tr>")
        for row in entries:
            if row is SEP or len(row) < 3 or not row[2]:
                continue
            rows.append(f"<tr><td style='padding-right:16px'>{row[2]}</td>"
                        f"<td>{row[0].replace('&', '')}</td></tr>")
        if title == "&Injection":
            rows.append("<tr><td>Ctrl+Shift+R / Ctrl+Shift+L</td><td>Patient right / left "
                        "side</td></tr>")
            rows.append("<tr><td>Ctrl+5 ... Ctrl+8</td><td>Level C5 ... C8 (by hand)</td></tr>")
    rows.append("<tr><td colspan=2><b>Mouse</b></td></tr>")
    for k, v in MOUSE:
        rows.append(f"<tr><td style='padding-right:16px'>{k}</td><td>{v}</td></tr>")
    return "<table>" + "".join(rows) + "</table>"

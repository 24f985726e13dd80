"""The window's menus as one table: (menu, text, method of the main window or callable taking the
window, shortcut, checkable). Shortcuts work wherever the focus is in the window."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence

from ..core.selection import LEVELS

SEP = None

ACTIONS = {
    "&File": [
        ("Open &folder...", lambda w: w.opener.folder_dialog(), "Ctrl+O"),
        ("Open &DICOMDIR, ZIP or files...", lambda w: w.opener.files_dialog(), "Ctrl+Shift+O"),
        ("Open from &PACS...", lambda w: w.opener.from_pacs(), "Ctrl+Shift+P"),
        ("RECENT",),
        ("&Export report...", "export_report", "Ctrl+E", "export"),
        SEP,
        ("&Quit", "close", "Ctrl+Q"),
    ],
    "&Edit": [
        ("&Undo", "undo", "Ctrl+Z", "undo"),
        ("&Redo", "redo", "Ctrl+Shift+Z", "redo"),
        SEP,
        ("&Delete ROI", "delete_roi", "Del", "delete_roi"),
    ],
    "&Image": [
        ("Next slice", lambda w: w.step_slice(1), "Down"),
        ("Previous slice", lambda w: w.step_slice(-1), "Up"),
        ("5 slices on", lambda w: w.step_slice(5), "PgDown"),
        ("5 slices back", lambda w: w.step_slice(-5), "PgUp"),
        ("First slice", lambda w: w.set_slice(0), "Home"),
        ("Last slice", lambda w: w.set_slice(10 ** 6), "End"),
        ("&Go to the ROI's slice", "go_to_roi", "G"),
        ("&Cine: play through the slices (again: stop)", "toggle_cine", "C"),
        SEP,
        ("Next series", lambda w: w.step_series(1), "Ctrl+]"),
        ("Previous series", lambda w: w.step_series(-1), "Ctrl+["),
        SEP,
        ("&Reset window/level", "reset_levels", "R"),
        ("Window: narrow (soft tissue)", lambda w: w.preset_levels(0.5), "1"),
        ("Window: series default", lambda w: w.preset_levels(1.0), "2"),
        ("Window: wide", lambda w: w.preset_levels(2.0), "3"),
        SEP,
        ("&Mask patient details", "toggle_mask", "M", "mask", True),
        ("Grad-CAM &overlay", "toggle_overlay", "O"),
        ("Zoom to fit", lambda w: w.view.vb.autoRange(padding=0.02), "F"),
    ],
    "&Tools": [
        ("&Draw ROI rectangle", lambda w: w.view.set_tool("roi"), "D"),
        ("&Length (mm)", lambda w: w.view.set_tool("length"), "L"),
        ("&Angle (three clicks, vertex second)", lambda w: w.view.set_tool("angle"), "A"),
        ("Delete the selected measurement", "delete_selected_measurement", "Shift+Del"),
        ("Clear measurements on this slice", "clear_measurements", "Shift+L"),
        SEP,
        ("Mark disc &levels on the sagittal (C2-3 to C7-T1)", "mark_levels", "K"),
        ("Clear the disc-level marks", "clear_marks", "Shift+K"),
        SEP,
        ("&Scroll through slices by dragging (left button)",
         lambda w: w.view.set_tool("scroll"), "S"),
        ("Pan (Esc)", "pan_tool", "Esc"),
    ],
    "&Injection": [("SIDES",), SEP, ("LEVELS",)],
    "&View": [
        ("&Axial only", lambda w: w.set_layout("axial"), "Ctrl+1", "layout_axial", True),
        ("Axial + &sagittal (when the study has one)", lambda w: w.set_layout("both"),
         "Ctrl+2", "layout_both", True),
        ("&Histogram (window/level)", "toggle_histogram", "H"),
        SEP,
        ("&Light theme", "toggle_theme", None, "light_theme", True),
    ],
    "&Model": [
        ("&Predict", "predict", "Ctrl+P", "predict"),
        ("Compare &both foramina (ROI mirrored across the midline)", "compare_sides", "B"),
        SEP,
        ("Model &card...", "about_model", None),
    ],
    "&Help": [
        ("&Keyboard shortcuts...", "show_help", "F1"),
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


def build_menus(win) -> dict[str, QAction]:
    """Create the menus on ``win`` from :data:`ACTIONS`; returns the named actions."""
    named: dict[str, QAction] = {}

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
                            lambda _=False, s=side: win.set_side(s), key, True)
                    group.addAction(a)
                    named[f"side_{side}"] = a
            elif row == ("LEVELS",):
                for i, lev in enumerate(LEVELS):
                    add(m, f"Level {lev}", lambda _=False, v=lev: win.set_level(v),
                        f"Ctrl+{5 + i}")
            else:
                text, target, shortcut, *rest = row
                name = rest[0] if rest else None
                checkable = bool(rest[1]) if len(rest) > 1 else False
                a = add(m, text, _slot(win, target), shortcut, checkable)
                if name:
                    named[name] = a
    named["layout_both"].setChecked(True)
    return named


def shortcut_sheet(win) -> str:
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


def _slot(win, target):
    """A slot for a table entry: a method name of the window, or a callable taking it."""
    if isinstance(target, str):
        method = getattr(win, target)
        return lambda _=False: method()
    return lambda _=False: target(win)

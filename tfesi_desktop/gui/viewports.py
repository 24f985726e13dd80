"""The viewports' layout (View menu, double-click): the axial alone or beside the sagittal (only
when the study has one: no empty pane), one viewport maximised, the histogram, the theme."""

from __future__ import annotations

from PySide6.QtWidgets import QWidget

from .context import AppContext


class Viewports:
    def __init__(self, ctx: AppContext, axial: QWidget, sagittal: QWidget, has_sagittal,
                 actions: dict):
        """``axial``: the axial SliceView; ``sagittal``: the localizer's widget;
        ``has_sagittal()``; ``actions``: the named menu actions (filled by the menus)."""
        self.ctx, self.axial, self.sagittal = ctx, axial, sagittal
        self._has_sagittal = has_sagittal
        self.actions = actions
        self.mode = "both"  # axial | both
        self.maximised: QWidget | None = None

    def layout(self):
        """The sagittal beside the axial only when the study has one, the layout asks for it
        and no viewport is maximised."""
        sag = self._has_sagittal() and self.mode == "both"
        m = self.maximised
        self.axial.setVisible(m is None or m is self.axial)
        self.sagittal.setVisible(sag and (m is None or m is self.sagittal))

    def maximise(self, viewport: QWidget | None):
        """Double-click: this viewport alone (again: back to the layout)."""
        self.maximised = None if self.maximised is viewport else viewport
        self.layout()

    def set_layout(self, mode: str):
        """``axial`` (the axial alone) or ``both`` (axial + sagittal, when there is one)."""
        self.mode, self.maximised = mode, None
        self.layout()
        for name in ("layout_axial", "layout_both"):
            a = self.actions.get(name)
            if a is not None:
                a.setChecked(name == f"layout_{mode}")

    def toggle_histogram(self):
        self.axial.show_histogram(not self.axial.histogram.isVisible())

    def apply_theme(self, light: bool):
        """Dark (default, as radiology viewers) or light."""
        from .theme import apply

        apply(light)
        a = self.actions.get("light_theme")
        if a is not None:
            a.setChecked(light)

    def toggle_theme(self):
        light = self.actions["light_theme"].isChecked()
        self.apply_theme(light)
        s = self.ctx.settings()
        s.setValue("theme", "light" if light else "dark")
        s.sync()

"""Plain data objects for what a scan finds: studies, stacks of slices, and the slices themselves.

Nothing here reads pixels; :mod:`.pixels` decodes a slice on demand.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DicomReadError, GeometryError, TfesiError
from ..geometry import SliceGeometry


@dataclass(frozen=True)
class SliceRef:
    """One 2-D image: a single-frame file, or one frame of a multi-frame file."""

    path: Path
    frame: int | None  # frame index in a multi-frame file, None for a single-frame file
    sop_instance_uid: str
    instance_number: int | None
    geometry: SliceGeometry | None
    rescale: tuple[float, float] = (1.0, 0.0)  # (slope, intercept) of the modality LUT
    window: tuple[float, float] | None = None  # (centre, width) from the tags, modality values
    monochrome1: bool = False
    bits_stored: int = 16
    signed: bool = False
    modality_lut_sequence: bool = False  # a ModalityLUTSequence replaces slope/intercept
    # why the geometry must not be used for a prediction (non-finite, degenerate or
    # non-orthonormal orientation, invalid pixel spacing), None when it is sound
    geometry_problem: str | None = None
    # why the pixel data may be misread (longer than the header declares), None when sound
    pixel_problem: str | None = None

    def require_geometry(self) -> SliceGeometry:
        """The slice's geometry, or :class:`GeometryError`: without sound geometry patient left
        and right cannot be told apart, so nothing that depends on the side may go on. Every
        prediction path calls this (preprocess, runtime), so it also refuses a slice whose
        pixel data may be misread (:class:`DicomReadError`)."""
        if self.pixel_problem:
            raise DicomReadError(f"{self.pixel_problem} No prediction is made from this image.",
                                 self.path)
        if self.geometry_problem:
            raise GeometryError(f"{self.geometry_problem} A prediction needs sound geometry to "
                                "tell the patient's left from right, so it is refused.",
                                self.path)
        if self.geometry is None:
            raise GeometryError("This image has no orientation information, so the patient's "
                                "left and right cannot be told apart.", self.path)
        return self.geometry

    @property
    def key(self) -> str:
        """SOP Instance UID, with ``:frame`` appended for a frame of a multi-frame file."""
        uid = self.sop_instance_uid
        return uid if self.frame is None else f"{uid}:{self.frame}"


@dataclass
class Stack:
    """Slices of one series that share orientation and matrix size, sorted along the normal.

    A series whose slices differ in orientation or size is split into several stacks
    (``stack_number`` 1, 2, ...).
    """

    study_uid: str
    series_uid: str
    stack_number: int
    series_number: int | None
    description: str
    modality: str
    echo_time: float | None
    slices: list[SliceRef]
    warnings: list[str] = field(default_factory=list)
    split: bool = False  # True when its series was split into several stacks
    manufacturer: str = ""  # the series' Manufacturer (core/source.py)

    @property
    def key(self) -> str:
        return f"{self.series_uid}#{self.stack_number}" if self.split else self.series_uid

    @property
    def geometry(self) -> SliceGeometry | None:
        return self.slices[0].geometry if self.slices else None

    def orientation_name(self) -> str:
        g = self.geometry
        if g is None:
            return "unknown"
        n = np.abs(g.normal)
        return ("sagittal", "coronal", "axial")[int(np.argmax(n))] + (
            "" if n.max() > 0.95 else " (oblique)")

    def slice_positions(self) -> list[float] | None:
        """Position of each slice along the normal (mm), or None without geometry."""
        g = self.geometry
        if g is None or any(s.geometry is None for s in self.slices):
            return None
        n = g.stack_direction
        return [float(np.dot(s.geometry.position, n)) for s in self.slices]

    def spacing_between_slices(self) -> float | None:
        pos = self.slice_positions()
        if not pos or len(pos) < 2:
            return None
        return float(np.median(np.diff(pos)))

    def is_t2(self) -> bool:
        if re.search(r"t2", self.description, re.IGNORECASE):
            return True
        return self.echo_time is not None and self.echo_time >= 60.0

    def find_slice(self, which: str | int) -> int:
        """Index of a slice given by its index (int or digits) or SOP Instance UID
        (``uid`` or ``uid:frame``)."""
        if isinstance(which, int) or str(which).isdigit():
            i = int(which)
            if not 0 <= i < len(self.slices):
                raise TfesiError(f"Slice {i} does not exist: this series has {len(self.slices)} "
                                 f"slices, numbered 0 to {len(self.slices) - 1}.")
            return i
        for i, s in enumerate(self.slices):
            if which in (s.key, s.sop_instance_uid):
                return i
        raise TfesiError(f"No slice with SOP Instance UID {which} in this series.")


@dataclass
class Study:
    study_uid: str
    patient_name: str
    patient_id: str
    birth_date: str
    sex: str
    study_date: str
    description: str
    stacks: list[Stack] = field(default_factory=list)


@dataclass
class ScanResult:
    """Everything a scan found: studies, and the files it had to skip with the reason."""

    studies: list[Study]
    skipped: list[tuple[Path, str]]
    non_images: int = 0  # DICOM files without an image (reports, presentation states, ...)
    files_seen: int = 0

    @property
    def stacks(self) -> list[Stack]:
        return [s for st in self.studies for s in st.stacks]

    def study_of(self, stack: Stack) -> Study:
        return next(st for st in self.studies if st.study_uid == stack.study_uid)

    def find_stack(self, uid: str | None = None) -> Stack:
        """The stack with this Series Instance UID (or key), else the proposed axial T2 one."""
        if uid is None:
            s = propose_stack(self.stacks)
            if s is None:
                raise TfesiError("No image series was found.")
            return s
        for s in self.stacks:
            if uid in (s.key, s.series_uid):
                return s
        raise TfesiError(f"No series with UID {uid} was found.")


def propose_stack(stacks: list[Stack]) -> Stack | None:
    """The series to show first: the axial T2 stack (slice normal closest to head-foot; T2 by
    description or echo time), preferring more slices. Every stack stays selectable."""

    def score(s: Stack):
        g = s.geometry
        axial = abs(float(g.normal[2])) if g is not None else 0.0
        return (axial >= 0.7, s.is_t2(), axial, len(s.slices))

    return max(stacks, key=score, default=None)

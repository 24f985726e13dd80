"""Patient geometry of an image plane, from ImageOrientationPatient / ImagePositionPatient.

Conventions (DICOM, LPS patient coordinates): +x towards the patient's left, +y posterior,
+z head. Arrays are (row, column). ``row_cos`` is the direction of increasing column index,
``col_cos`` of increasing row index; ``spacing`` is (between rows, between columns) in mm, as in
PixelSpacing.

The *canonical* (radiological) orientation of an axial image puts anterior at the top and the
patient's right on the image's left: its row direction points to the patient's left (+x) and its
column direction posterior (+y). Every stored orientation reaches it by one of the eight
flips/transposes of the array (:class:`Dihedral`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import GeometryError

_AXES = (("L", "R"), ("P", "A"), ("H", "F"))  # letter for +axis, -axis


def direction_letters(v, *, threshold: float = 0.25) -> str:
    """Letters of the patient directions a unit vector points to, strongest first (as Weasis).

    ``(1, 0, 0)`` gives ``"L"``; an oblique ``(0.7, -0.7, 0.1)`` gives ``"LA"``.
    """
    v = np.asarray(v, dtype=float)
    order = np.argsort(-np.abs(v))
    letters = [_AXES[i][0 if v[i] > 0 else 1] for i in order if abs(v[i]) > threshold]
    return "".join(letters) or "?"


@dataclass(frozen=True)
class Dihedral:
    """One of the eight axis-aligned flips/transposes of a 2-D array: first transpose (if set),
    then flip the rows (upside down), then flip the columns (left-right)."""

    transpose: bool = False
    flip_rows: bool = False
    flip_cols: bool = False

    def apply(self, a: np.ndarray) -> np.ndarray:
        """Transform an array whose first two axes are (row, column)."""
        if self.transpose:
            a = np.swapaxes(a, 0, 1)
        if self.flip_rows:
            a = a[::-1]
        if self.flip_cols:
            a = a[:, ::-1]
        return a

    def invert(self, a: np.ndarray) -> np.ndarray:
        """Undo :meth:`apply`."""
        if self.flip_cols:
            a = a[:, ::-1]
        if self.flip_rows:
            a = a[::-1]
        if self.transpose:
            a = np.swapaxes(a, 0, 1)
        return a

    def directions(self, row_cos, col_cos) -> tuple[np.ndarray, np.ndarray]:
        """Row and column direction cosines of the transformed array."""
        r, c = np.asarray(row_cos, float), np.asarray(col_cos, float)
        if self.transpose:
            r, c = c, r
        if self.flip_rows:
            c = -c
        if self.flip_cols:
            r = -r
        return r, c

    def rect_to_canonical(self, rect, stored_shape):
        """A rectangle (x, y, w, h) in stored pixels (x = column, y = row; covering columns
        x..x+w-1) as the rectangle it becomes in the transformed array."""
        x, y, w, h = rect
        rows, cols = stored_shape
        if self.transpose:
            x, y, w, h, rows, cols = y, x, h, w, cols, rows
        if self.flip_rows:
            y = rows - (y + h)
        if self.flip_cols:
            x = cols - (x + w)
        return x, y, w, h

    def point_from_canonical(self, row: float, col: float, canonical_shape
                             ) -> tuple[float, float]:
        """A pixel-centre position (row, col) of the transformed array (whose shape is
        ``canonical_shape``) as the position of the same point in the stored array."""
        rows, cols = canonical_shape
        if self.flip_cols:
            col = cols - 1 - col
        if self.flip_rows:
            row = rows - 1 - row
        if self.transpose:
            row, col = col, row
        return row, col

    def rect_from_canonical(self, rect, canonical_shape):
        """Inverse of :meth:`rect_to_canonical`: a rectangle of the transformed array (whose
        shape is ``canonical_shape``) in stored pixels."""
        x, y, w, h = rect
        rows, cols = canonical_shape
        if self.flip_cols:
            x = cols - (x + w)
        if self.flip_rows:
            y = rows - (y + h)
        if self.transpose:
            x, y, w, h = y, x, h, w
        return x, y, w, h

    @staticmethod
    def all() -> list[Dihedral]:
        return [Dihedral(t, fr, fc) for t in (False, True) for fr in (False, True)
                for fc in (False, True)]


@dataclass(frozen=True)
class SliceGeometry:
    """Where one image plane lies in the patient."""

    position: tuple[float, float, float]  # centre of the top-left pixel, mm
    row_cos: tuple[float, float, float]
    col_cos: tuple[float, float, float]
    spacing: tuple[float, float]  # (between rows, between columns), mm
    shape: tuple[int, int]  # (rows, columns)

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.row_cos, self.col_cos)

    @property
    def stack_direction(self) -> np.ndarray:
        """The slice normal, signed so that its largest component is positive (axial stacks
        run foot to head, sagittal right to left, coronal anterior to posterior), so that a
        stack's order does not depend on how its images are stored (flipped or not)."""
        n = self.normal
        return n if n[int(np.argmax(np.abs(n)))] > 0 else -n

    def pixel_to_patient(self, row: float, col: float) -> np.ndarray:
        """Patient coordinates (mm) of the centre of pixel (row, col); fractional values allowed."""
        return (np.asarray(self.position, float)
                + col * self.spacing[1] * np.asarray(self.row_cos, float)
                + row * self.spacing[0] * np.asarray(self.col_cos, float))

    def edge_letters(self) -> dict[str, str]:
        """Orientation letters for the image's four edges: keys top, bottom, left, right."""
        r, c = np.asarray(self.row_cos, float), np.asarray(self.col_cos, float)
        return {"right": direction_letters(r), "left": direction_letters(-r),
                "bottom": direction_letters(c), "top": direction_letters(-c)}

    def is_axial(self) -> bool:
        return abs(float(self.normal[2])) >= 0.7

    def patient_side(self, row: float, col: float) -> str:
        """'left' or 'right': the patient side of pixel (row, col) relative to the midline.

        The midline is taken through the image centre, as the study cut each axial image into its
        left and right halves; which half is the patient's left comes from the geometry only.
        """
        centre = self.pixel_to_patient((self.shape[0] - 1) / 2, (self.shape[1] - 1) / 2)
        dx = float((self.pixel_to_patient(row, col) - centre)[0])
        return "left" if dx > 0 else "right"

    def canonical_transform(self) -> Dihedral:
        """The flip/transpose that brings this axial image to radiological orientation."""
        if not self.is_axial():
            raise GeometryError(
                "This image is not an axial slice (its plane is tilted more than 45 degrees from "
                "axial), so it cannot be used to mark a neural foramen.")
        r, c = np.asarray(self.row_cos, float), np.asarray(self.col_cos, float)
        transpose = abs(r[0]) < abs(c[0])
        if transpose:
            r, c = c, r
        return Dihedral(transpose=bool(transpose), flip_rows=bool(c[1] < 0),
                        flip_cols=bool(r[0] < 0))

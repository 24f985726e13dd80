"""One exception hierarchy. Each error carries a sentence a clinician can read and, where there is
one, the offending path. The command line prints ``error: <message>`` and exits 2; the GUI shows
the message in a dialog."""

from __future__ import annotations

from pathlib import Path


class TfesiError(Exception):
    """Base class of every error this program raises on purpose."""

    def __init__(self, message: str, path: str | Path | None = None):
        self.message = message
        self.path = None if path is None else Path(path)
        super().__init__(str(self))

    def __str__(self) -> str:
        return self.message if self.path is None else f"{self.path}: {self.message}"


class InputNotFoundError(TfesiError):
    """A path the user gave does not exist or holds nothing usable."""


class DicomReadError(TfesiError):
    """A DICOM file could not be read or decoded."""


class NoImagesError(TfesiError):
    """The input holds no DICOM images at all."""


class GeometryError(TfesiError):
    """An image lacks the orientation or position needed to tell patient left from right."""


class RoiError(TfesiError):
    """The region of interest is outside the image, too small, or on the wrong side."""


class ManifestError(TfesiError):
    """A manifest CSV is missing columns or has unusable rows."""


class ModelError(TfesiError):
    """A model bundle is missing, tampered with, or was made for another preprocessing."""


class Cancelled(TfesiError):
    """The user cancelled a long operation."""

    def __init__(self, message: str = "Cancelled by the user.", path=None):
        super().__init__(message, path)

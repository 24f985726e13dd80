"""Reading DICOM studies: header scans, grouping and sorting, lazy pixel decoding."""

from .model import ScanResult, SliceRef, Stack, Study, propose_stack
from .pixels import canonical_values, default_window, modality_values
from .scan import scan

__all__ = ["ScanResult", "SliceRef", "Stack", "Study", "canonical_values", "default_window",
           "modality_values", "propose_stack", "scan"]

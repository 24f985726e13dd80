"""Reading DICOM studies: header scans, grouping and sorting, lazy pixel decoding.

Names are imported on first use (PEP 562), so that importing the data model does not import
pydicom: the desktop window starts faster and pydicom loads in a worker.
"""

from importlib import import_module

_WHERE = {
    "ScanResult": ".model", "SliceRef": ".model", "Stack": ".model", "Study": ".model",
    "propose_stack": ".model", "canonical_values": ".pixels", "default_window": ".pixels",
    "modality_values": ".pixels", "cached_values": ".pixels", "scan": ".reader",
}

__all__ = sorted(_WHERE)


def __getattr__(name):
    if name in _WHERE:
        return getattr(import_module(_WHERE[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

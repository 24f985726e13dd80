"""Reading a manifest CSV (the format ``tfesi synth`` writes, documented in the README) and
turning its rows into model inputs with the one preprocessing function."""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ManifestError, TfesiError
from .preprocess import PREPROCESSING_VERSION

REQUIRED = ("patient_id", "study_path", "series_uid", "sop_instance_uid", "roi_x", "roi_y",
            "roi_w", "roi_h", "side", "label")


@dataclass(frozen=True)
class Case:
    patient_id: str
    study_path: Path
    series_uid: str
    slice_key: str  # SOP Instance UID, or uid:frame
    roi: tuple[int, int, int, int]
    side: str
    level: str
    label: int  # 1 favourable, 0 poor
    row: dict


def read_csv_rows(path: Path, what: str, columns, error=ManifestError) -> list[dict]:
    """The rows of a CSV file with these columns, or ``error`` with a plain sentence."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        raise error(f"The {what} cannot be read ({e.strerror}).", path) from e
    if not rows:
        raise error(f"The {what} has no rows.", path)
    missing = [c for c in columns if c not in rows[0]]
    if missing:
        raise error(f"Missing columns: {', '.join(missing)} (found: {', '.join(rows[0])}).",
                    path)
    return rows


def read_manifest(path: str | Path) -> list[Case]:
    path = Path(path)
    rows = read_csv_rows(path, "manifest", REQUIRED)
    cases = []
    for i, r in enumerate(rows, start=2):
        try:
            label = int(r["label"])
            if label not in (0, 1):
                raise ValueError
            roi = tuple(int(r[k]) for k in ("roi_x", "roi_y", "roi_w", "roi_h"))
        except ValueError:
            raise ManifestError(f"Line {i}: label must be 0 or 1 and the ROI four integers.",
                                path) from None
        if r["side"] not in ("left", "right"):
            raise ManifestError(f"Line {i}: side must be 'left' or 'right'.", path)
        key = r["sop_instance_uid"] + (f":{r['frame']}" if r.get("frame") not in (None, "")
                                       else "")
        cases.append(Case(r["patient_id"], path.parent / r["study_path"], r["series_uid"], key,
                          roi, r["side"], r.get("level", ""), label, r))
    return cases


def case_input(case: Case):
    """The model input (see :mod:`.preprocess`) of one manifest row."""
    from .dicom import scan
    from .preprocess import slice_input

    result = scan(case.study_path)
    stack = result.find_stack(case.series_uid)
    ref = stack.slices[stack.find_slice(case.slice_key)]
    return slice_input(ref, case.roi, case.side)


def load_inputs(path: str | Path, *, progress=None, cache: bool = True
                ) -> tuple[np.ndarray, np.ndarray, list[Case]]:
    """(inputs (n, 100, 100, 3) float32 0..255, labels (n,), cases) for a manifest.

    The inputs are cached beside the manifest (``.inputs-<hash>.npz``), keyed by the manifest's
    content and the preprocessing version, since building them reads every study."""
    path = Path(path)
    cases = read_manifest(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    cache_file = path.with_name(f".{path.stem}.inputs-v{PREPROCESSING_VERSION}-{digest}.npz")
    labels = np.array([c.label for c in cases], np.int64)
    if cache and cache_file.exists():
        with np.load(cache_file) as z:
            images = z["x"].astype(np.float32)
        return np.repeat(images[..., None], 3, axis=3), labels, cases
    images = np.empty((len(cases), 100, 100), np.float32)
    for i, c in enumerate(cases):
        try:
            images[i] = case_input(c).image[:, :, 0]  # the three channels are identical
        except TfesiError as e:
            raise ManifestError(f"Patient {c.patient_id} (line {i + 2}): {e}", path) from e
        if progress:
            progress(i + 1, len(cases))
    if cache:
        try:
            tmp = cache_file.with_suffix(".partial.npz")
            np.savez_compressed(tmp, x=images)
            tmp.replace(cache_file)
        except OSError:
            pass  # a read-only folder: no cache, same result
    return np.repeat(images[..., None], 3, axis=3), labels, cases

"""Reading a manifest CSV (the format ``tfesi synth`` writes, documented in the README) and
turning its rows into model inputs with the one preprocessing function."""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ManifestError, TfesiError
from .fileio import write_atomically
from .geometry import Dihedral
from .preprocess import PREPROCESSING_VERSION, check_roi, model_input, model_inputs

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
    # the slice a physician picked (synthetic cohorts: the narrowest or a neighbour), as an
    # offset along the stack from slice_key; 0 where the manifest does not say
    pick_offset: int = 0


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
        try:
            pick = int(r.get("pick_offset") or 0)
        except ValueError:
            raise ManifestError(f"Line {i}: pick_offset must be an integer.", path) from None
        cases.append(Case(r["patient_id"], path.parent / r["study_path"], r["series_uid"], key,
                          roi, r["side"], r.get("level", ""), label, r, pick))
    return cases


def generator_probabilities(cases) -> np.ndarray | None:
    """A synthetic cohort's own probability of a favourable outcome per case (the manifest's
    ``p_favourable``, written by ``tfesi synth``): scored against the outcomes it gives the best
    achievable AUC. None for a clinic's manifest, which has no such column."""
    try:
        return np.array([float(c.row["p_favourable"]) for c in cases])
    except (KeyError, TypeError, ValueError):
        return None


def case_input(case: Case):
    """The model input (see :mod:`.preprocess`) of one manifest row."""
    return case_region(case).input()


# Room around the ROI kept for training's jitter (shift 15 %, scale 1.15) and the ROI set.
MARGIN = 0.4


@dataclass(frozen=True)
class Region:
    """The stored part of a case's slice around its ROI, enough to make the model input of the
    ROI and of any jittered ROI with :func:`..preprocess.model_input` (no rereading)."""

    values: np.ndarray  # (rows, columns) modality values, float32, as stored
    dihedral: Dihedral  # stored -> radiological
    roi: tuple[int, int, int, int]  # in this part's pixels
    side: str
    origin: tuple[int, int] = (0, 0)  # (x, y) of this part's first pixel in the slice
    spacing: tuple[float, float] = (1.0, 1.0)  # mm between rows, between columns
    # the neighbouring slices of the same series: (offset along the stack, their stored part,
    # the ROI carried there by geometry in that part's pixels), offset 0 excluded
    neighbours: tuple[tuple[int, np.ndarray, tuple[int, int, int, int]], ...] = ()

    @property
    def offsets(self) -> tuple[int, ...]:
        """The stack offsets this region holds, 0 (the case's slice) included, sorted."""
        return tuple(sorted({0, *(o for o, _, _ in self.neighbours)}))

    def at(self, offset: int) -> Region:
        """The region on the slice ``offset`` along the stack (0: this one)."""
        if offset == 0:
            return self
        for o, values, roi in self.neighbours:
            if o == offset:
                return Region(values, self.dihedral, roi, self.side, self.origin, self.spacing)
        raise KeyError(offset)

    def input(self, crop=None):
        return model_input(self.values, self.dihedral, self.roi, self.side, crop=crop)

    def inputs(self, crops):
        return model_inputs(self.values, self.dihedral, self.roi, self.side, crops=crops)


def _window(roi, shape) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): the part of a slice kept around an ROI (:data:`MARGIN`)."""
    x, y, w, h = roi
    mx, my = int(np.ceil(MARGIN * w)), int(np.ceil(MARGIN * h))
    return (max(x - mx, 0), max(y - my, 0), min(x + w + mx, shape[1]),
            min(y + h + my, shape[0]))


def case_region(case: Case, *, around: int = 0) -> Region:
    """The case's region, with the ``around`` slices on each side of it along the stack (those
    that exist), the ROI carried to each by geometry (:func:`..neighbourhood.carry_roi`)."""
    from .dicom import scan
    from .dicom.pixels import modality_values
    from .neighbourhood import carry_roi

    stack = scan(case.study_path).find_stack(case.series_uid)
    index = stack.find_slice(case.slice_key)
    ref = stack.slices[index]
    values = modality_values(ref)
    x, y, w, h = check_roi(case.roi, values.shape)
    g = ref.require_geometry()
    d = g.canonical_transform()
    x0, y0, x1, y1 = _window((x, y, w, h), values.shape)
    neighbours = []
    for o in range(-around, around + 1):
        if o == 0 or not 0 <= index + o < len(stack.slices):
            continue
        other = stack.slices[index + o]
        og = other.require_geometry()
        if og.canonical_transform() != d:
            continue  # not the same orientation: not a neighbour of this ROI
        ov = modality_values(other)
        nx, ny, nw, nh = carry_roi((x, y, w, h), g, og)
        a0, b0, a1, b1 = _window((nx, ny, nw, nh), ov.shape)
        neighbours.append((o, np.ascontiguousarray(ov[b0:b1, a0:a1], np.float32),
                           (nx - a0, ny - b0, nw, nh)))
    return Region(np.ascontiguousarray(values[y0:y1, x0:x1], np.float32), d,
                  (x - x0, y - y0, w, h), case.side, (x0, y0),
                  (float(g.spacing[0]), float(g.spacing[1])), tuple(neighbours))


def load_regions(path: str | Path, *, progress=None, cache: bool = True, around: int = 0
                 ) -> tuple[list[Region], np.ndarray, list[Case]]:
    """(regions, labels (n,), cases) for a manifest, each region with ``around`` slices on each
    side (:func:`case_region`). Cached beside the manifest
    (``.<name>.regions-<hash>.npz``), keyed by its content, since this reads every study."""
    path = Path(path)
    cases = read_manifest(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    ring = f"-around{around}" if around else ""
    cache_file = path.with_name(
        f".{path.stem}.regions-v{PREPROCESSING_VERSION}{ring}-{digest}.npz")
    labels = np.array([c.label for c in cases], np.int64)
    if cache and cache_file.exists():
        with np.load(cache_file, allow_pickle=False) as z:
            meta = z["meta"]
            near = z["near"] if "near" in z else np.zeros((0, 6))
            regions = []
            for i, m in enumerate(meta):
                nb = tuple((int(n[1]), z[f"n{i}_{int(n[1])}"], tuple(int(v) for v in n[2:6]))
                           for n in near[near[:, 0] == i])
                regions.append(Region(z[f"v{i}"], Dihedral(*(bool(b) for b in m[4:7])),
                                      tuple(int(v) for v in m[:4]), "left" if m[7] else "right",
                                      (int(m[8]), int(m[9])), (float(m[10]), float(m[11])), nb))
        return regions, labels, cases
    regions = []
    for i, c in enumerate(cases):
        try:
            regions.append(case_region(c, around=around))
        except TfesiError as e:
            raise ManifestError(f"Patient {c.patient_id} (line {i + 2}): {e}", path) from e
        if progress:
            progress(i + 1, len(cases))
    if cache:
        meta = np.array([[*r.roi, r.dihedral.transpose, r.dihedral.flip_rows,
                          r.dihedral.flip_cols, r.side == "left", *r.origin, *r.spacing]
                         for r in regions], np.float64)
        near = np.array([[i, o, *roi] for i, r in enumerate(regions)
                         for o, _, roi in r.neighbours], np.int64).reshape(-1, 6)
        arrays = {f"v{i}": r.values for i, r in enumerate(regions)}
        arrays.update({f"n{i}_{o}": v for i, r in enumerate(regions) for o, v, _ in r.neighbours})
        try:  # image data: private
            write_atomically(cache_file, lambda f: np.savez(f, meta=meta, near=near, **arrays),
                             private=True)
        except TfesiError:
            pass  # a read-only folder: no cache, same result
    return regions, labels, cases


def load_inputs(path: str | Path, *, progress=None, cache: bool = True
                ) -> tuple[np.ndarray, np.ndarray, list[Case]]:
    """(inputs (n, 100, 100, 3) float32 0..255 of the ROIs as drawn, labels (n,), cases)."""
    regions, labels, cases = load_regions(path, progress=progress, cache=cache)
    return np.stack([r.input().image for r in regions]), labels, cases

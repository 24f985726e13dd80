"""Synthetic cervical MRI cohorts: DICOM studies, a manifest, and a known outcome model.

Each patient gets a study with an axial T2 series through the injected level (narrowest foramen on
one recorded slice) and a sagittal T2 of the same anatomy in the same Frame of Reference. The
outcome (favourable = NRS reduction >= 50 % at 2 months) is drawn from
:func:`favourable_probability` of findings visible on the narrowest slice of
the injected foramen (its narrowest width, how flattened the nerve root is, how long the narrowing
is along the channel), so the best AUC any model can reach is known and reported. The ROI in the
manifest is placed as a physician would: its size varies and the foramen's waist is not always at
its centre. Patients lie off-centre and turned in fields of view of 256-512 pixels at 0.4-0.8 mm.
Storage varies as it does across scanners (orientation, MONOCHROME1, rescale, compression,
multi-frame, file names); the anatomy does not depend on it. All names are made up.
"""

from __future__ import annotations

import csv
import json
import math
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
    generate_uid,
)

from ..geometry import Dihedral
from ..source import GENERATOR_MANUFACTURER
from .outcome import (  # noqa: F401 - re-exported: the outcome model was defined here
    B_COMPRESSION,
    B_LENGTH,
    B_WIDTH,
    C_MEAN,
    L_MEAN,
    LENGTH_RANGE,
    SEVERE_SHARE,
    W_CENTRE,
    _draw_findings,
    _draw_injected_width,
    auc,
    best_achievable_auc,
    expected_mix,
    favourable_probability,
)
from .phantom import (
    CANAL_Y,
    CONTRASTS,
    NORMAL_WIDTH,
    SLICE_THICKNESS,
    SUB_SLICES,
    Anatomy,
    ForamenSpec,
    _smooth,
    _to_frame,
    canal_centre,
    foramen_waist,
    kim_grade,
    render_slices,
    tissue_values,
    to_image,
)

GENERATOR_VERSION = 2
LEVELS = ("C5", "C6", "C7", "C8")
LEVEL_WEIGHTS = (7, 135, 136, 10)  # the paper's injection levels
RIGHT_FRACTION = 159 / 288  # the paper's right:left = 159:129
LEVEL_Z = {"C5": -45.0, "C6": -62.0, "C7": -79.0, "C8": -96.0}  # mm, foramen height
MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4.1"
UID_ROOT = "1.2.826.0.1.3680043.8.498."  # pydicom's root, for made-up instances

# the range of the image: matrices and pixel sizes of cervical axial T2 series
MATRICES = (256, 320, 384, 448, 512)
MATRIX_WEIGHTS = (0.35, 0.15, 0.2, 0.1, 0.2)
PIXEL_RANGE = (0.4, 0.8)  # mm
MAX_FOV = 280.0  # mm
MAX_OFFCENTRE = 30.0  # mm, the canal's centre from the image centre
MAX_ROTATION = 10.0  # degrees
ROI_SIZE_RANGE = (22.0, 38.0)  # mm, each side
ROI_OFFSET_SD = 0.15  # of the ROI's size, each axis: where the waist lies from the ROI's centre
# the slice a physician picks as "the narrowest" by eye: the narrowest one, or (at this rate, half
# up, half down) its neighbour along the stack, 3-3.5 mm away (issue 22). Drawn from a stream of
# its own, so the images and outcomes of a seed do not depend on it.
PICK_NEIGHBOUR_RATE = 0.4

_FIRST = ("Alba", "Bruno", "Carmen", "Dario", "Elin", "Farid", "Greta", "Hugo", "Ines", "Jonas",
          "Kaori", "Luca", "Mira", "Nils", "Olga", "Pavel", "Quinn", "Rosa", "Sven", "Tilde")
_LAST = ("Testwell", "Phantomsen", "Samplova", "Mockridge", "Fakhouri", "Dummington",
         "Synthberg", "Placeholt", "Examplar", "Nullmann")


@dataclass(frozen=True)
class Storage:
    """How a study is stored: the anatomy is the same whatever these are."""

    dihedral: Dihedral = Dihedral()
    tilt_deg: float = 0.0  # gantry tilt about the patient's left-right axis
    monochrome1: bool = False
    rescale: tuple[float, float] | None = None  # (slope, intercept) written to the tags
    transfer_syntax: str = ExplicitVRLittleEndian
    multiframe: bool = False
    shuffled_names: bool = False
    window_tags: bool = True
    reverse_instance_numbers: bool = False

    def describe(self) -> str:
        parts = []
        d = self.dihedral
        if d != Dihedral():
            parts.append("".join(n for n, f in (("T", d.transpose), ("V", d.flip_rows),
                                                  ("H", d.flip_cols)) if f))
        if self.tilt_deg:
            parts.append(f"tilt{self.tilt_deg:+.0f}")
        if self.monochrome1:
            parts.append("mono1")
        if self.rescale:
            parts.append("rescale")
        ts = {RLELossless: "rle", JPEG2000Lossless: "j2k", ImplicitVRLittleEndian: "implicit"}
        if self.transfer_syntax in ts:
            parts.append(ts[self.transfer_syntax])
        if self.multiframe:
            parts.append("multiframe")
        if self.shuffled_names:
            parts.append("shuffled")
        return "+".join(parts) or "plain"


def random_storage(rng: np.random.Generator) -> Storage:
    others = [d for d in Dihedral.all() if d != Dihedral()]
    return Storage(
        dihedral=Dihedral() if rng.random() < 0.6 else others[rng.integers(len(others))],
        tilt_deg=float(np.round(rng.uniform(-8, 8))) if rng.random() < 0.3 else 0.0,
        monochrome1=bool(rng.random() < 0.1),
        rescale=((0.5, -100.0) if rng.random() < 0.5 else (0.25, 0.0)) if rng.random() < 0.25
        else None,
        transfer_syntax=str(rng.choice([ExplicitVRLittleEndian] * 5 + [ImplicitVRLittleEndian,
                                        RLELossless, RLELossless, JPEG2000Lossless])),
        multiframe=bool(rng.random() < 0.1),
        shuffled_names=bool(rng.random() < 0.3),
        window_tags=bool(rng.random() < 0.5),
        reverse_instance_numbers=bool(rng.random() < 0.2),
    )


@dataclass
class Patient:
    """Everything drawn for one synthetic patient."""

    index: int
    seed: int
    patient_id: str
    name: str
    sex: str
    birth_date: str
    study_date: str
    level: str
    side: str
    anatomy: Anatomy
    width_mm: float  # narrowest width of the injected foramen
    other_width_mm: float
    p_favourable: float
    label: int  # 1 favourable (NRS reduction >= 50 %), 0 poor
    nrs_before: int
    nrs_after: int
    matrix: int
    pixel_mm: float
    n_slices: int
    slice_gap_mm: float
    narrowest_index: int  # in the sorted stack (0 = most caudal... along the slice normal)
    scale: float
    noise: float
    bias: tuple[float, float, float]
    roi_canonical: tuple[int, int, int, int]  # x, y, w, h in canonical pixels, as placed
    storage: Storage = field(default_factory=Storage)
    compression: float = 0.0  # of the injected foramen's root, 0..1
    narrowing_mm: float = L_MEAN  # half-length of the injected foramen's narrowing
    contrast: str = "T2"

    @property
    def offcentre_mm(self) -> float:
        """Distance of the spinal canal's centre from the image centre (mm)."""
        return float(np.hypot(*canal_centre(self.anatomy)))

    @property
    def rotation_deg(self) -> float:
        return float(np.rad2deg(self.anatomy.rotation))

    def canonical_pixel(self, uv: tuple[float, float]) -> tuple[float, float]:
        """Canonical image mm (u, v) as canonical pixel coordinates (x = column, y = row)."""
        half = (self.matrix - 1) / 2
        return uv[0] / self.pixel_mm + half, uv[1] / self.pixel_mm + half

    @property
    def waist_canonical(self) -> tuple[float, float]:
        """(x, y) canonical pixels of the injected foramen's narrowest point."""
        return self.canonical_pixel(foramen_waist(self.anatomy, self.side))

    @property
    def canal_canonical(self) -> tuple[float, float]:
        """(x, y) canonical pixels of the spinal canal's centre."""
        return self.canonical_pixel(canal_centre(self.anatomy))


def _foramen_spec(width: float, rng: np.random.Generator, *, compression: float | None = None,
                  length: float | None = None) -> ForamenSpec:
    narrowing = max(NORMAL_WIDTH - width, 0.0)
    share = rng.uniform(0.3, 0.7)  # how much of it comes from the osteophyte vs the facet
    if compression is None:
        compression = float(np.clip(0.45 + 0.15 * (2.4 - width) + rng.normal(0, 0.25), 0, 1))
    if length is None:
        length = float(rng.uniform(*LENGTH_RANGE))
    return ForamenSpec(narrowing * share, narrowing * (1 - share), length=length,
                       compression=compression, displacement=float(rng.uniform(-0.7, 0.7)))


def _neck_reach(anatomy: Anatomy) -> float:
    """How far (mm) the neck reaches from the canal's centre."""
    a = np.linspace(0, 2 * np.pi, 181)
    x, y = anatomy.neck[0] * np.cos(a), 3 + anatomy.neck[1] * np.sin(a)
    return float(np.max(np.hypot(x, y - CANAL_Y)))


def _place_roi(anatomy: Anatomy, side: str, matrix: int, pixel: float,
               rng: np.random.Generator) -> tuple[int, int, int, int]:
    """The ROI a physician draws: foramen, disc, superior articular process and facet, 22-38 mm
    on each side, its centre off the foramen's waist by about 15 % of its size on each axis (at
    most 30 %), never reaching across the canal's centre, inside the image (canonical pixels)."""
    u, v = foramen_waist(anatomy, side)
    size = rng.uniform(*ROI_SIZE_RANGE, size=2)
    off = np.clip(rng.normal(0, ROI_OFFSET_SD, 2), -2 * ROI_OFFSET_SD, 2 * ROI_OFFSET_SD) * size
    half = (matrix - 1) / 2
    cx, cy = (u + off[0]) / pixel + half, (v + off[1]) / pixel + half
    w, h = (int(round(s / pixel)) for s in size)
    x0, y0 = int(round(cx - (w - 1) / 2)), int(round(cy - (h - 1) / 2))
    # the medial edge stays at least 1 mm lateral of the canal's centre
    canal_x = canal_centre(anatomy)[0] / pixel + half
    margin = 1.0 / pixel
    if side == "right":  # image left of the canal
        right_edge = min(x0 + w - 1, int(np.floor(canal_x - margin)))
        w = right_edge - x0 + 1
    else:
        left_edge = max(x0, int(np.ceil(canal_x + margin)))
        w -= left_edge - x0
        x0 = left_edge
    x0, y0 = min(max(x0, 0), matrix - w), min(max(y0, 0), matrix - h)
    return x0, y0, w, h


def physician_pick(seed: int, index: int) -> int:
    """The offset (along the sorted stack: -1, 0 or +1) of the slice the physician picks from
    the narrowest one: 0 at ``1 - PICK_NEIGHBOUR_RATE``, each neighbour at half the rate."""
    u = np.random.default_rng([seed, index, 4]).random()
    if u >= PICK_NEIGHBOUR_RATE:
        return 0
    return -1 if u < PICK_NEIGHBOUR_RATE / 2 else 1


def draw_patient(seed: int, index: int, *, storage: Storage | None = None,
                 matrix: int | None = None, contrast: str = "T2",
                 severe_share: float = SEVERE_SHARE) -> Patient:
    """Draw patient ``index`` of the cohort with this ``seed`` (independent of other patients).
    ``matrix`` fixes the image size (otherwise drawn, 256-512); ``contrast`` is "T2" (the
    protocol) or "T1" (another contrast, e.g. to test out-of-distribution detection); neither
    changes the anatomy or the outcome. ``severe_share``: the patient mix, the share of severe
    (Kim grade 2) injected foramina (``outcome.SEVERE_SHARE``; a site's, core/synth/sites.py):
    it changes the injected foramen's stenosis, and through it the outcome; every other draw
    uses the same random numbers."""
    if contrast not in CONTRASTS:
        raise ValueError(f"unknown contrast {contrast!r}; expected one of {CONTRASTS}")
    rng = np.random.default_rng([seed, index])
    side = "right" if rng.random() < RIGHT_FRACTION else "left"
    level = LEVELS[rng.choice(4, p=np.array(LEVEL_WEIGHTS) / sum(LEVEL_WEIGHTS))]
    width, compression, length = _draw_findings(rng, severe_share)
    other = float(rng.uniform(0.8, 6.5))
    specs = {side: _foramen_spec(width, rng, compression=compression, length=length),
             ("left" if side == "right" else "right"): _foramen_spec(other, rng)}
    rotation = float(np.deg2rad(rng.uniform(-MAX_ROTATION, MAX_ROTATION)))
    r, phi = MAX_OFFCENTRE * np.sqrt(rng.random()), rng.uniform(0, 2 * np.pi)
    canal_uv = np.array([r * np.cos(phi), r * np.sin(phi)])
    anatomy = Anatomy(
        rotation=rotation,
        neck=(float(rng.uniform(52, 64)), float(rng.uniform(45, 55))),
        body=(float(rng.uniform(8.5, 10.5)), float(rng.uniform(7, 8.5))),
        canal=(float(rng.uniform(11, 13)), float(rng.uniform(6, 7.5))),
        cord=(float(rng.uniform(6, 7)), float(rng.uniform(3.6, 4.4))),
        right=specs["right"], left=specs["left"],
        fat=float(rng.uniform(0.65, 0.85)), muscle=float(rng.uniform(0.22, 0.32)),
        csf=float(rng.uniform(0.88, 1.0)), foramen_fat=float(rng.uniform(0.6, 0.9)),
        marrow=float(rng.uniform(0.4, 0.65)), disc_height=float(rng.uniform(4, 6)),
        spread=float(rng.uniform(3, 5)), obliquity=float(rng.uniform(0.4, 0.9)),
        drift=float(rng.uniform(-0.35, 0.35)), facet_tilt=float(rng.uniform(0.1, 0.5)),
        facet_gap=float(rng.uniform(0.5, 1.4)), texture_seed=int(rng.integers(1 << 31)),
        texture=float(rng.uniform(0.7, 1.3)), contrast=contrast)
    p = float(favourable_probability(width, compression, length))
    label = int(rng.random() < p)
    before = int(rng.integers(4, 10))
    after = int(rng.integers(0, before // 2 + 1)) if label else int(
        rng.integers(before // 2 + 1, before + 1))
    drawn_matrix = int(rng.choice(MATRICES, p=MATRIX_WEIGHTS))
    matrix = int(matrix or drawn_matrix)
    # the whole neck inside the field of view, 3 mm to spare: off-centre as far as it allows
    reach = _neck_reach(anatomy) + 3.0
    max_half_fov = (matrix - 1) / 2 * PIXEL_RANGE[1] - 0.1
    if np.hypot(*canal_uv) + reach > max_half_fov:
        canal_uv *= max(max_half_fov - reach, 0.0) / np.hypot(*canal_uv)
    lo = max(PIXEL_RANGE[0], (np.hypot(*canal_uv) + reach) / ((matrix - 1) / 2))
    hi = max(lo, min(PIXEL_RANGE[1], MAX_FOV / matrix))
    pixel = round(float(rng.uniform(lo, hi)), 4)
    pixel = max(pixel, round(lo + 5e-5, 4))
    c, s = np.cos(rotation), np.sin(rotation)
    # the anatomy frame's origin, so that its canal centre (0, CANAL_Y) lands on canal_uv
    anatomy = replace(anatomy, centre=(float(canal_uv[0] + s * CANAL_Y),
                                       float(canal_uv[1] - c * CANAL_Y)))
    n_slices = int(rng.integers(12, 17))
    gap = float(rng.choice([3.0, 3.3, 3.5]))
    narrowest = int(rng.integers(3, n_slices - 3))
    sex = "M" if rng.random() < 166 / 288 else "F"
    age = int(np.clip(rng.normal(53.7, 11.2), 20, 79))
    study_day = date(2024, 1, 1) + timedelta(days=int(rng.integers(0, 700)))
    birth = study_day - timedelta(days=int(age * 365.25 + rng.integers(0, 365)))
    roi = _place_roi(anatomy, side, matrix, pixel, rng)
    return Patient(
        index=index, seed=seed, patient_id=f"SYN-{seed:04d}-{index:05d}",
        name=f"{_LAST[rng.integers(len(_LAST))]}^{_FIRST[rng.integers(len(_FIRST))]}",
        sex=sex, birth_date=birth.strftime("%Y%m%d"), study_date=study_day.strftime("%Y%m%d"),
        level=level, side=side, anatomy=anatomy, width_mm=width, other_width_mm=other,
        p_favourable=p, label=label, nrs_before=before, nrs_after=after, matrix=matrix,
        pixel_mm=pixel, n_slices=n_slices, slice_gap_mm=gap, narrowest_index=narrowest,
        scale=float(rng.uniform(900, 1900)), noise=float(rng.uniform(0.012, 0.03)),
        bias=(float(rng.uniform(-0.15, 0.15)), float(rng.uniform(-0.15, 0.15)),
              float(rng.uniform(0.0, 0.15))),
        roi_canonical=roi,
        storage=storage if storage is not None else random_storage(rng),
        compression=compression, narrowing_mm=length, contrast=contrast)


def render_axial(p: Patient, *, only: int | None = None) -> np.ndarray:
    """The axial series in canonical orientation as integer-valued modality values,
    shape (slices, rows, columns), float32; slice k lies (k - narrowest) * gap mm along the
    slice normal from the narrowest one, 3 mm thick (the mean of thin sub-slices). ``only``:
    render just that slice (the others stay zero; the noise is drawn for all, so that slice is
    the same as in the full series)."""
    rng = np.random.default_rng([p.seed, p.index, 1])
    n = p.matrix
    c = ((np.arange(n) - (n - 1) / 2) * p.pixel_mm).astype(np.float32)
    v, u = np.meshgrid(c, c, indexing="ij")
    bias = 1 + p.bias[0] * u / 80 + p.bias[1] * v / 80 + p.bias[2] * np.exp(
        -(u ** 2 + v ** 2) / (2 * 60.0 ** 2))
    ks = [only] if only is not None else list(range(p.n_slices))
    imgs = render_slices(p.anatomy, [(k - p.narrowest_index) * p.slice_gap_mm for k in ks], u, v,
                         thickness=SLICE_THICKNESS, sub_slices=SUB_SLICES)
    out = np.zeros((p.n_slices, n, n), np.float32)
    for k in range(p.n_slices):
        noise_re, noise_im = rng.normal(0, p.noise, (2, n, n))
        if k not in ks:
            continue
        img = imgs[ks.index(k)] * bias
        # Rician noise, as magnitude MR images have
        out[k] = np.round(np.sqrt((img + noise_re) ** 2 + noise_im ** 2) * p.scale)
    return out


def _canonical_directions(tilt_deg: float) -> tuple[np.ndarray, np.ndarray]:
    t = math.radians(tilt_deg)
    return np.array([1.0, 0.0, 0.0]), np.array([0.0, math.cos(t), math.sin(t)])


def stored_geometry(storage: Storage, canonical_origin: np.ndarray, pixel_mm: float,
                    shape: tuple[int, int]):
    """IOP and IPP of the stored array whose canonical view is the given canonical grid."""
    r_c, c_c = _canonical_directions(storage.tilt_deg)
    d = storage.dihedral
    rows = np.arange(shape[0])[:, None] * np.ones(shape[1])
    cols = np.ones(shape[0])[:, None] * np.arange(shape[1])
    # canonical indices of the stored array's pixels
    ri, ci = d.invert(rows), d.invert(cols)
    origin = canonical_origin + ci[0, 0] * pixel_mm * r_c + ri[0, 0] * pixel_mm * c_c
    # stored row direction: one step along a stored row
    row_dir = (ci[0, 1] - ci[0, 0]) * r_c + (ri[0, 1] - ri[0, 0]) * c_c
    col_dir = (ci[1, 0] - ci[0, 0]) * r_c + (ri[1, 0] - ri[0, 0]) * c_c
    return origin, row_dir, col_dir


def _uid(*parts) -> str:
    return generate_uid(prefix=UID_ROOT, entropy_srcs=[str(x) for x in parts])


def _base_dataset(p: Patient, study_uid: str, series_uid: str, sop_uid: str, sop_class: str,
                  ts: str) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ts
    meta.ImplementationVersionName = "TFESI_SYNTH_1"
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop_uid
    ds.PatientName, ds.PatientID = p.name, p.patient_id
    ds.PatientBirthDate, ds.PatientSex = p.birth_date, p.sex
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = p.study_date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "101500"
    ds.StudyDescription = "MRI CERVICAL SPINE (SYNTHETIC)"
    ds.StudyID = str(p.index)
    ds.AccessionNumber = f"SYN{p.index:06d}"
    ds.Modality = "MR"
    ds.Manufacturer = GENERATOR_MANUFACTURER
    ds.InstitutionName = "Synthetic data - no real patient"
    ds.BodyPartExamined = "CSPINE"
    ds.FrameOfReferenceUID = _uid(p.seed, p.index, "for")
    ds.PatientPosition = "HFS"
    ds.MagneticFieldStrength = 1.5
    ds.SamplesPerPixel = 1
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    return ds


def _stored_pixels(values: np.ndarray, storage: Storage) -> np.ndarray:
    """Stored values (uint16) that the reader turns back into exactly ``values``."""
    stored = values.astype(np.float64)
    if storage.rescale:
        slope, intercept = storage.rescale
        stored = (stored - intercept) / slope
    stored = np.round(stored)
    if storage.monochrome1:
        stored = 65535 - stored
    if stored.min() < 0 or stored.max() > 65535:
        raise ValueError("synthetic values out of the 16-bit range")
    return stored.astype(np.uint16)


def _set_pixels(ds: Dataset, arr: np.ndarray, ts: str) -> None:
    ds.Rows, ds.Columns = arr.shape[-2:]
    ds.PhotometricInterpretation = ds.get("PhotometricInterpretation", "MONOCHROME2")
    if ts in (RLELossless, JPEG2000Lossless):
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.PixelData = arr.tobytes()
        ds.compress(ts, arr, generate_instance_uid=False)
    else:
        ds.PixelData = arr.tobytes()


def write_study(p: Patient, out_dir: Path, site=None) -> dict:
    """Write one patient's study into ``out_dir`` and return its manifest row (without the
    study path). ``site``: a :class:`.sites.Site` whose scanner shows it (default: the
    protocol's)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    st = p.storage
    study_uid = _uid(p.seed, p.index, "study")
    series_uid = _uid(p.seed, p.index, "axial")
    p = site.patient(p) if site else p  # hook: sites.py (fat suppression)
    volume = site.transform(render_axial(p), p) if site else render_axial(p)
    n = p.matrix
    r_c, c_c = _canonical_directions(st.tilt_deg)
    normal = np.cross(r_c, c_c)
    centre0 = np.array([0.0, 0.0, LEVEL_Z[p.level]])
    files: list[tuple[Dataset, str]] = []
    names = _file_names(p, p.n_slices + SAG_SLICES)
    narrowest_sop = pick_sop = ""
    pick = p.narrowest_index + physician_pick(p.seed, p.index)
    frames, positions = [], []
    for k in range(p.n_slices):
        centre = centre0 + (k - p.narrowest_index) * p.slice_gap_mm * normal
        canon_origin = centre - (n - 1) / 2 * p.pixel_mm * (r_c + c_c)
        origin, row_dir, col_dir = stored_geometry(st, canon_origin, p.pixel_mm, (n, n))
        frames.append(_stored_pixels(st.dihedral.invert(volume[k]), st))
        positions.append(origin)
    iop = [float(x) for x in (*row_dir, *col_dir)]
    lo, hi = np.percentile(volume, [1.0, 99.5])
    window = (float((lo + hi) / 2), float(hi - lo))  # as a scanner's default window
    desc = f"{p.contrast} TSE AX C-SPINE"
    te, tr = (100.0, 3500.0) if p.contrast == "T2" else (10.0, 600.0)
    if st.multiframe:
        sop = _uid(p.seed, p.index, "mf")
        narrowest_sop = pick_sop = sop
        ds = _base_dataset(p, study_uid, series_uid, sop, ENHANCED_MR_IMAGE, st.transfer_syntax)
        ds.SeriesDescription, ds.SeriesNumber, ds.InstanceNumber = desc, 3, 1
        ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
        ds.NumberOfFrames = p.n_slices
        shared = Dataset()
        pm = Dataset()
        pm.PixelSpacing = [p.pixel_mm, p.pixel_mm]
        pm.SliceThickness = 3.0
        po = Dataset()
        po.ImageOrientationPatient = iop
        echo = Dataset()
        echo.EffectiveEchoTime = te
        shared.PixelMeasuresSequence = Sequence([pm])
        shared.PlaneOrientationSequence = Sequence([po])
        shared.MREchoSequence = Sequence([echo])
        if st.window_tags:
            voi = Dataset()
            voi.WindowCenter, voi.WindowWidth = window
            shared.FrameVOILUTSequence = Sequence([voi])
        ds.SharedFunctionalGroupsSequence = Sequence([shared])
        per = []
        order = list(range(p.n_slices))
        if st.reverse_instance_numbers:
            order.reverse()  # frames stored head-first: the reader sorts by position
        for k in order:
            f = Dataset()
            pp = Dataset()
            pp.ImagePositionPatient = [float(x) for x in positions[k]]
            f.PlanePositionSequence = Sequence([pp])
            fc = Dataset()
            fc.InStackPositionNumber = k + 1
            f.FrameContentSequence = Sequence([fc])
            if st.rescale:
                pvt = Dataset()
                pvt.RescaleSlope, pvt.RescaleIntercept = st.rescale
                pvt.RescaleType = "US"
                f.PixelValueTransformationSequence = Sequence([pvt])
            per.append(f)
        ds.PerFrameFunctionalGroupsSequence = Sequence(per)
        if st.monochrome1:
            ds.PhotometricInterpretation = "MONOCHROME1"
        _set_pixels(ds, np.stack([frames[k] for k in order]), st.transfer_syntax)
        files.append((ds, names[0]))
        narrowest_frame = order.index(p.narrowest_index)
        pick_frame = order.index(pick)
    else:
        narrowest_frame = pick_frame = None
        for k in range(p.n_slices):
            sop = _uid(p.seed, p.index, "ax", k)
            if k == p.narrowest_index:
                narrowest_sop = sop
            if k == pick:
                pick_sop = sop
            ds = _base_dataset(p, study_uid, series_uid, sop, MR_IMAGE, st.transfer_syntax)
            ds.SeriesDescription, ds.SeriesNumber = desc, 3
            ds.InstanceNumber = (p.n_slices - k) if st.reverse_instance_numbers else k + 1
            ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NORM"]
            ds.ScanningSequence, ds.SequenceVariant = "SE", "SK"
            ds.EchoTime, ds.RepetitionTime = te, tr
            ds.ImagePositionPatient = [float(x) for x in positions[k]]
            ds.ImageOrientationPatient = iop
            ds.PixelSpacing = [p.pixel_mm, p.pixel_mm]
            ds.SliceThickness, ds.SpacingBetweenSlices = 3.0, p.slice_gap_mm
            ds.SliceLocation = float(np.dot(positions[k], normal))
            if st.rescale:
                ds.RescaleSlope, ds.RescaleIntercept = st.rescale
                ds.RescaleType = "US"
            if st.window_tags:
                ds.WindowCenter, ds.WindowWidth = window
            if st.monochrome1:
                ds.PhotometricInterpretation = "MONOCHROME1"
            _set_pixels(ds, frames[k], st.transfer_syntax)
            files.append((ds, names[k]))
    files.extend(_sagittal_localizer(p, study_uid, names[-SAG_SLICES:]))
    for ds, name in files:
        if site:
            site.stamp(ds)
        ds.save_as(out_dir / name, enforce_file_format=True)
    x, y, w, h = _roi_to_stored(p)
    waist = _point_to_stored(p, p.waist_canonical)
    canal = _point_to_stored(p, p.canal_canonical)
    return dict(
        patient_id=p.patient_id, study_uid=study_uid, series_uid=series_uid,
        sop_instance_uid=narrowest_sop, frame="" if narrowest_frame is None else narrowest_frame,
        pick_offset=pick - p.narrowest_index, pick_sop_instance_uid=pick_sop,
        pick_frame="" if pick_frame is None else pick_frame,
        roi_x=x, roi_y=y, roi_w=w, roi_h=h, side=p.side, level=p.level,
        nrs_before=p.nrs_before, nrs_after=p.nrs_after, label=p.label,
        width_mm=round(p.width_mm, 3), grade=kim_grade(p.width_mm),
        other_side_grade=kim_grade(p.other_width_mm), p_favourable=round(p.p_favourable, 4),
        storage=st.describe(), waist_x=round(waist[0], 3), waist_y=round(waist[1], 3),
        canal_x=round(canal[0], 3), canal_y=round(canal[1], 3),
        offcentre_mm=round(p.offcentre_mm, 2), rotation_deg=round(p.rotation_deg, 2),
        compression=round(p.compression, 3), narrowing_mm=round(p.narrowing_mm, 2),
        contrast=p.contrast)


def _roi_to_stored(p: Patient) -> tuple[int, int, int, int]:
    """The canonical ROI rectangle expressed in stored pixels (x = column, y = row)."""
    x, y, w, h = p.roi_canonical
    return p.storage.dihedral.rect_from_canonical((x, y, w, h), (p.matrix, p.matrix))


def _point_to_stored(p: Patient, xy: tuple[float, float]) -> tuple[float, float]:
    """A canonical pixel position (x = column, y = row, pixel centres at integers) as the
    position (x, y) of the same point in the stored array."""
    row, col = p.storage.dihedral.point_from_canonical(xy[1], xy[0], (p.matrix, p.matrix))
    return float(col), float(row)


def _file_names(p: Patient, n: int) -> list[str]:
    if p.storage.shuffled_names:
        rng = np.random.default_rng([p.seed, p.index, 2])
        return [f"{rng.integers(1 << 40):010x}" for _ in range(n)]
    return [f"IM{k + 1:04d}.dcm" for k in range(n)]


# the sagittal T2: the same anatomy as the axial series, in the same Frame of Reference
SAG_SLICES = 7  # sagittal T2 slices, 3 mm apart, centred on the spinal canal
SAG_MATRIX, SAG_PIXEL, SAG_GAP = 256, 0.9, 3.0
SAG_CENTRE_Z = -53.5  # mm: the middle of C2-3 .. C7-T1
DISCS = ("C2-3", "C3-4", "C4-5", "C5-6", "C6-7", "C7-T1")
LEVEL_DISC = {"C5": "C4-5", "C6": "C5-6", "C7": "C6-7", "C8": "C7-T1"}  # root exits below
DISC_PITCH = 17.0  # mm between discs, along the spine (as between LEVEL_Z)


def disc_positions(level: str) -> dict[str, float]:
    """Each disc's centre along the spine (mm) from the injected level's disc, which lies in the
    plane of the axial series' narrowest slice (the axial phantom's ``dz = 0``)."""
    k = DISCS.index(LEVEL_DISC[level])
    return {d: (k - i) * DISC_PITCH for i, d in enumerate(DISCS)}


def disc_points(p: Patient) -> dict[str, tuple[float, float, float]]:
    """Patient coordinates (mm) of each disc's centre on the midline (for tests)."""
    r_c, c_c = _canonical_directions(p.storage.tilt_deg)
    normal = np.cross(r_c, c_c)
    centre0 = np.array([0.0, 0.0, LEVEL_Z[p.level]])
    a = p.anatomy
    u, v = to_image(a, (0.0, -4.0))  # the vertebral body's centre
    base = centre0 + u * r_c + v * c_c
    return {d: tuple(float(x) for x in base + s * normal)
            for d, s in disc_positions(p.level).items()}


def render_sagittal(p: Patient, xs, *, centre_yz: tuple[float, float]) -> np.ndarray:
    """Sagittal T2 images (len(xs), SAG_MATRIX, SAG_MATRIX) of the patient's anatomy at patient
    x = ``xs`` (mm); rows run head to foot, columns anterior to posterior, centred on
    ``centre_yz`` (patient y, z). The anatomy is the axial phantom's, continued along the spine
    (the axial series' normal, so a tilted axial series was tilted to the discs): vertebral
    bodies and discs every :data:`DISC_PITCH` mm, the injected level's disc in the plane of the
    narrowest axial slice, the canal and cord at the axial canal's position, the posterior
    elements behind. Float32 modality values (Rician noise, scaled as the axial series)."""
    r_c, c_c = _canonical_directions(p.storage.tilt_deg)
    normal = np.cross(r_c, c_c)
    centre0 = np.array([0.0, 0.0, LEVEL_Z[p.level]])
    a = p.anatomy
    tis = tissue_values(a)
    n, px = SAG_MATRIX, SAG_PIXEL
    off = (np.arange(n) - (n - 1) / 2) * px
    zz, yy = np.meshgrid(centre_yz[1] - off, centre_yz[0] + off, indexing="ij")
    rng = np.random.default_rng([p.seed, p.index, 3])
    discs = np.array(sorted(disc_positions(p.level).values()))
    edge = 0.5
    out = np.zeros((len(xs), n, n), np.float32)
    for k, x0 in enumerate(xs):
        rel = np.stack([np.full_like(yy, x0), yy, zz], -1) - centre0
        s = rel @ normal  # along the spine
        u, v = rel @ r_c, rel @ c_c
        x, y = _to_frame(a, u.astype(np.float32), v.astype(np.float32))
        s = s.astype(np.float32)
        img = np.zeros_like(x)

        def paint(mask, value):
            nonlocal img
            img = img * (1 - mask) + value * mask

        def ellipse(cx, cy, ax, ay, x=x, y=y):
            r = np.sqrt(((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2)
            return _smooth((r - 1) * min(ax, ay), edge)

        # the neck: fat ring around muscle
        head = 1.0
        paint(ellipse(0, 3, a.neck[0], a.neck[1]) * head, tis["fat"])
        paint(ellipse(0, 3, a.neck[0] - 5, a.neck[1] - 5) * head, tis["muscle"])
        paint(ellipse(0, 33, 11 + 13, 10) * head, tis["paraspinal"])
        paint(ellipse(0, -33, 9, 7) * head, tis["air"])  # airway
        paint(ellipse(0, -22, 6, 3.5) * head, tis["oesophagus"])
        paint(ellipse(0, -16.5, 12, 2.5) * head, tis["prevertebral_fat"])
        # where along the spine: distance to the nearest disc centre
        nearest = discs[np.argmin(np.abs(s[..., None] - discs), axis=-1)]
        ds = np.abs(s - nearest)
        in_disc = _smooth(ds - a.disc_height / 2, edge)
        body = ellipse(0, -4.0, a.body[0], a.body[1] * 1.15)
        spine = _smooth(s - (discs[-1] + 22.0), 1.0)  # C2 (with the dens) is the top
        paint(body * spine, tis["cortex"])
        paint(ellipse(0, -4.0, a.body[0] - 1.2, a.body[1] * 1.15 - 1.2) * spine
              * _smooth(a.disc_height / 2 + 0.8 - ds, edge), tis["marrow"])
        paint(body * in_disc * spine, tis["annulus"])
        paint(ellipse(0, -4.5, a.body[0] * 0.55, a.body[1] * 0.6) * in_disc * spine,
              tis["nucleus"])
        # posterior elements: laminae and spinous processes between the discs
        post = _smooth(ds - (DISC_PITCH / 2 - 3.0), edge) * spine
        paint(ellipse(0, 26, 3.0, 9.5) * post * _smooth(ds - 2.0, edge), tis["cortex"])
        paint(ellipse(0, 26, 1.8, 8.0) * _smooth(ds - 1.2, edge) * spine
              * _smooth(3.5 - ds, edge), tis["marrow"])
        paint(ellipse(0, CANAL_Y + 0.9, a.canal[0] + 0.6, a.canal[1] + 2.3)
              * _smooth(CANAL_Y + 1.5 - y, 0.6) * head, tis["ligamentum_flavum"])
        # the canal with the cord
        paint(ellipse(0, CANAL_Y, a.canal[0], a.canal[1]), tis["csf"])
        paint(ellipse(0, CANAL_Y, a.cord[0], a.cord[1]), tis["cord"])
        noise_re, noise_im = rng.normal(0, p.noise, (2, n, n))
        out[k] = np.round(np.sqrt((img + noise_re) ** 2 + noise_im ** 2) * p.scale)
    return out


def sagittal_centre(p: Patient) -> tuple[float, float, float]:
    """Patient coordinates of the spinal canal's centre on the narrowest axial slice."""
    r_c, c_c = _canonical_directions(p.storage.tilt_deg)
    u, v = canal_centre(p.anatomy)
    return tuple(float(x) for x in np.array([0.0, 0.0, LEVEL_Z[p.level]]) + u * r_c + v * c_c)


def _sagittal_localizer(p: Patient, study_uid: str, names: list[str]):
    """A sagittal T2 series of the same anatomy as the axial one, in the same Frame of
    Reference: :data:`SAG_SLICES` slices 3 mm apart through the spinal canal, vertebral bodies,
    discs and canal at the heights that match the axial slices (:func:`render_sagittal`)."""
    series_uid = _uid(p.seed, p.index, "sag")
    n, px = SAG_MATRIX, SAG_PIXEL
    cx, cy, _ = sagittal_centre(p)
    xs = [cx + (k - (SAG_SLICES - 1) / 2) * SAG_GAP for k in range(SAG_SLICES)]
    centre_yz = (cy - 10.0, SAG_CENTRE_Z)
    images = render_sagittal(p, xs, centre_yz=centre_yz)
    lo, hi = np.percentile(images, [1.0, 99.5])
    out = []
    for k, x in enumerate(xs):
        arr = np.clip(images[k], 0, 65535).astype(np.uint16)
        sop = _uid(p.seed, p.index, "sag", k)
        ds = _base_dataset(p, study_uid, series_uid, sop, MR_IMAGE, ExplicitVRLittleEndian)
        ds.SeriesDescription, ds.SeriesNumber, ds.InstanceNumber = "T2 TSE SAG C-SPINE", 1, k + 1
        ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NORM"]
        ds.EchoTime, ds.RepetitionTime = 100.0, 3000.0
        ds.ImageOrientationPatient = [0.0, 1.0, 0.0, 0.0, 0.0, -1.0]
        top = np.array([x, centre_yz[0] - (n - 1) / 2 * px, centre_yz[1] + (n - 1) / 2 * px])
        ds.ImagePositionPatient = [float(v) for v in top]
        ds.PixelSpacing = [px, px]
        ds.SliceThickness, ds.SpacingBetweenSlices = 3.0, SAG_GAP
        ds.WindowCenter, ds.WindowWidth = float((lo + hi) / 2), float(hi - lo)
        ds.PhotometricInterpretation = "MONOCHROME2"
        _set_pixels(ds, arr, ExplicitVRLittleEndian)
        out.append((ds, names[k]))
    return out


# the manifest: one row per patient. roi_* is the ROI as placed, in stored pixels (x = column,
# y = row of the top-left corner); waist_x/waist_y the injected foramen's narrowest point and
# canal_x/canal_y the spinal canal's centre, both in stored pixels (x = column, y = row, pixel
# centres at integers) of the narrowest slice; offcentre_mm how far the canal's centre lies from
# the image centre; rotation_deg the in-plane rotation of the anatomy; compression (0..1) and
# narrowing_mm (half-length along the channel) the findings that with width_mm make p_favourable;
# contrast the series' contrast ("T2", or "T1" for out-of-distribution tests). sop_instance_uid/
# frame name the narrowest slice; pick_sop_instance_uid/pick_frame the slice a physician picked
# (pick_offset slices from the narrowest along the stack, at PICK_NEIGHBOUR_RATE a neighbour).
MANIFEST_COLUMNS = ("patient_id", "study_path", "study_uid", "series_uid", "sop_instance_uid",
                    "frame", "roi_x", "roi_y", "roi_w", "roi_h", "side", "level", "nrs_before",
                    "nrs_after", "label", "width_mm", "grade", "other_side_grade",
                    "p_favourable", "storage", "waist_x", "waist_y", "canal_x", "canal_y",
                    "offcentre_mm", "rotation_deg", "compression", "narrowing_mm", "contrast",
                    "pick_offset", "pick_sop_instance_uid", "pick_frame")


def _one(args) -> dict:
    seed, index, out, storage, matrix, contrast, site, clinical = args
    p = draw_patient(seed, index, storage=storage, matrix=matrix, contrast=contrast,
                     severe_share=site.severe_share if site else SEVERE_SHARE)
    folder = f"P{index:05d}"
    row = write_study(p, Path(out) / folder, site)
    row["study_path"] = folder
    if clinical:  # clinical variables, the outcome from image + clinic (synth/clinical.py)
        from .clinical import add_clinical

        add_clinical(row, p)
    return row


def make_cohort(out: str | os.PathLike, *, patients: int, seed: int = 0, jobs: int | None = None,
                storage: Storage | None = None, matrix: int | None = None,
                contrast: str = "T2", progress=None, clinical: bool = False,
                site=None) -> dict:
    """Write ``patients`` studies, ``manifest.csv`` and ``cohort.json`` into ``out``.

    Returns the cohort summary (also in cohort.json): counts, outcome model, and the best
    achievable AUC (expected under the generator, and on this cohort's own labels).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = jobs or os.cpu_count() or 1
    tasks = [(seed, i, str(out), storage, matrix, contrast, site, clinical)
             for i in range(patients)]
    rows: list[dict] = []
    if jobs == 1 or patients == 1:
        for i, t in enumerate(tasks):
            rows.append(_one(t))
            if progress:
                progress(i + 1, patients)
    else:
        with ProcessPoolExecutor(jobs) as ex:
            for i, row in enumerate(ex.map(_one, tasks, chunksize=4)):
                rows.append(row)
                if progress:
                    progress(i + 1, patients)
    with open(out / "manifest.csv", "w", newline="") as f:
        w = csv.DictWriter(f, MANIFEST_COLUMNS + (_clinical_columns() if clinical else ()))
        w.writeheader()
        w.writerows(rows)
    labels = np.array([r["label"] for r in rows])
    probs = np.array([r["p_favourable"] for r in rows])
    severe_share = site.severe_share if site else SEVERE_SHARE
    mix = expected_mix(severe_share=severe_share)
    summary = dict(
        generator_version=GENERATOR_VERSION, seed=seed, patients=patients,
        favourable=int(labels.sum()), poor=int((1 - labels).sum()),
        contrast=contrast, **({"site": site.describe()} if site else {}),
        outcome_model=(
            f"P(favourable) = 1 / (1 + exp(-({B_WIDTH} * (w - {W_CENTRE}) - {B_COMPRESSION} * "
            f"(c - {C_MEAN}) - {B_LENGTH} * (L - {L_MEAN})))), all on the narrowest slice of the "
            "injected foramen: w = its narrowest width (mm), c = root compression, how much the "
            "nerve root is flattened there (0..1), L = the half-length of the narrowing along the "
            "channel (mm); "
            "nothing else enters it"),
        best_achievable_auc_expected=round(mix["best_achievable_auc"], 4),
        **({} if severe_share == SEVERE_SHARE else {"patient_mix": {
            "severe_share": severe_share, "mean_width_mm_expected": round(mix["mean_width_mm"], 3),
            "favourable_rate_expected": round(mix["favourable_rate"], 4),
            "mean_width_mm_this_cohort": round(float(np.mean([float(r["width_mm"])
                                                              for r in rows])), 3)}}),
        best_achievable_auc_this_cohort=(round(auc(probs, labels), 4)
                                         if 0 < labels.sum() < len(labels) else None),
        physician_pick=(f"pick_*: the narrowest slice, or at a rate of {PICK_NEIGHBOUR_RATE} "
                        "(half up, half down) its neighbour, as a physician picks by eye"),
        note="Synthetic images from a phantom; made-up names; not patient data.")
    if clinical:  # issue 25 (core/synth/clinical.py)
        from .clinical import cohort_summary

        summary.update(cohort_summary(rows, summary))
    (out / "cohort.json").write_text(json.dumps(summary, indent=1))
    return summary


def _clinical_columns() -> tuple[str, ...]:
    from .clinical import CLINICAL_COLUMNS

    return CLINICAL_COLUMNS


__all__ = ["MANIFEST_COLUMNS", "PICK_NEIGHBOUR_RATE", "Patient", "Storage", "auc",
           "best_achievable_auc",
           "draw_patient", "favourable_probability", "make_cohort", "physician_pick",
           "random_storage", "render_axial", "write_study"]

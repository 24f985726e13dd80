# Generator version 1, kept unchanged: the shipped demonstration model was trained on its
# phantoms, so testing and re-validating that model needs patients like them (README).
"""Synthetic cervical MRI cohorts: DICOM studies, a manifest, and a known outcome model.

Each patient gets a study with an axial T2 series through the injected level (narrowest foramen on
one recorded slice) and a sagittal localizer. The outcome (favourable = NRS reduction >= 50 % at 2
months) is drawn from :func:`favourable_probability` of the injected foramen's narrowest width, so
the best AUC any model can reach is known and reported. Storage varies as it does across scanners
(orientation, MONOCHROME1, rescale, compression, multi-frame, file names); the anatomy does not
depend on it. All names are made up.
"""

from __future__ import annotations

import csv
import json
import math
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
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

from ...geometry import Dihedral
from .phantom import NORMAL_WIDTH, Anatomy, ForamenSpec, foramen_waist, kim_grade, render

GENERATOR_VERSION = 1
LEVELS = ("C5", "C6", "C7", "C8")
LEVEL_WEIGHTS = (7, 135, 136, 10)  # the paper's injection levels
RIGHT_FRACTION = 159 / 288  # the paper's right:left = 159:129
LEVEL_Z = {"C5": -45.0, "C6": -62.0, "C7": -79.0, "C8": -96.0}  # mm, foramen height
MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4.1"
UID_ROOT = "1.2.826.0.1.3680043.8.498."  # pydicom's root, for made-up instances

# the outcome model: P(favourable) = sigmoid(SLOPE * (narrowest width of the injected foramen
# in mm - CENTRE)); nothing else visible or hidden enters it
OUTCOME_SLOPE = 2.4
OUTCOME_CENTRE = 2.3

_FIRST = ("Alba", "Bruno", "Carmen", "Dario", "Elin", "Farid", "Greta", "Hugo", "Ines", "Jonas",
          "Kaori", "Luca", "Mira", "Nils", "Olga", "Pavel", "Quinn", "Rosa", "Sven", "Tilde")
_LAST = ("Testwell", "Phantomsen", "Samplova", "Mockridge", "Fakhouri", "Dummington",
         "Synthberg", "Placeholt", "Examplar", "Nullmann")


def favourable_probability(width_mm):
    """The generator's outcome model (also the best possible score for a patient)."""
    return 1.0 / (1.0 + np.exp(-OUTCOME_SLOPE * (np.asarray(width_mm) - OUTCOME_CENTRE)))


def _draw_injected_width(rng: np.random.Generator) -> float:
    # inclusion criteria of the paper: grade 1 or 2 on the injected side
    if rng.random() < 0.55:
        return float(rng.uniform(2.05, 4.0))  # grade 1
    return float(rng.uniform(0.8, 2.0))  # grade 2


def best_achievable_auc(n: int = 200_000, seed: int = 0) -> float:
    """Expected AUC of the Bayes-optimal score (the true probability) under the generator."""
    rng = np.random.default_rng(seed)
    w = np.array([_draw_injected_width(rng) for _ in range(n)])
    p = favourable_probability(w)
    y = rng.random(n) < p
    return auc(p, y)


def auc(scores, labels) -> float:
    """Mann-Whitney AUC with ties counted half (no scikit-learn needed here)."""
    from scipy.stats import rankdata

    scores, labels = np.asarray(scores, float), np.asarray(labels, bool)
    ranks = rankdata(scores)
    n1, n0 = labels.sum(), (~labels).sum()
    return float((ranks[labels].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


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
    roi_canonical: tuple[int, int, int, int]  # x, y, w, h in canonical pixels
    storage: Storage = field(default_factory=Storage)


def _foramen_spec(width: float, rng: np.random.Generator) -> ForamenSpec:
    narrowing = max(NORMAL_WIDTH - width, 0.0)
    share = rng.uniform(0.3, 0.7)  # how much of it comes from the osteophyte vs the facet
    return ForamenSpec(narrowing * share, narrowing * (1 - share))


def draw_patient(seed: int, index: int, *, storage: Storage | None = None,
                 matrix: int | None = None) -> Patient:
    """Draw patient ``index`` of the cohort with this ``seed`` (independent of other patients)."""
    rng = np.random.default_rng([seed, index])
    side = "right" if rng.random() < RIGHT_FRACTION else "left"
    level = LEVELS[rng.choice(4, p=np.array(LEVEL_WEIGHTS) / sum(LEVEL_WEIGHTS))]
    width = _draw_injected_width(rng)
    other = float(rng.uniform(0.8, 6.5))
    specs = {side: _foramen_spec(width, rng),
             ("left" if side == "right" else "right"): _foramen_spec(other, rng)}
    anatomy = Anatomy(
        centre=(float(rng.normal(0, 3)), float(rng.normal(0, 3))),
        rotation=float(np.deg2rad(rng.normal(0, 3))),
        neck=(float(rng.uniform(52, 64)), float(rng.uniform(45, 55))),
        body=(float(rng.uniform(8.5, 10.5)), float(rng.uniform(7, 8.5))),
        canal=(float(rng.uniform(11, 13)), float(rng.uniform(6, 7.5))),
        cord=(float(rng.uniform(6, 7)), float(rng.uniform(3.6, 4.4))),
        right=specs["right"], left=specs["left"],
        fat=float(rng.uniform(0.65, 0.85)), muscle=float(rng.uniform(0.22, 0.32)),
        csf=float(rng.uniform(0.88, 1.0)), disc_height=float(rng.uniform(4, 6)),
        spread=float(rng.uniform(3, 5)))
    p = float(favourable_probability(width))
    label = int(rng.random() < p)
    before = int(rng.integers(4, 10))
    after = int(rng.integers(0, before // 2 + 1)) if label else int(
        rng.integers(before // 2 + 1, before + 1))
    matrix = matrix or int(rng.choice([256, 256, 256, 512]))
    fov = float(rng.uniform(160, 200))
    pixel = round(fov / matrix, 4)
    n_slices = int(rng.integers(12, 17))
    gap = float(rng.choice([3.0, 3.3, 3.5]))
    narrowest = int(rng.integers(3, n_slices - 3))
    sex = "M" if rng.random() < 166 / 288 else "F"
    age = int(np.clip(rng.normal(53.7, 11.2), 20, 79))
    study_day = date(2024, 1, 1) + timedelta(days=int(rng.integers(0, 700)))
    birth = study_day - timedelta(days=int(age * 365.25 + rng.integers(0, 365)))
    # the ROI a clinician would draw: foramen, disc, superior articular process and facet,
    # about 30 mm square, centred near the foramen's waist, never quite the same
    u, v = foramen_waist(anatomy, side)
    size_mm = rng.uniform(27, 34, size=2)
    cu, cv = u + rng.normal(0, 1.5), v + rng.normal(0, 1.5)
    half = (matrix - 1) / 2
    w, h = (int(round(s / pixel)) for s in size_mm)
    x0 = int(round(cu / pixel + half - w / 2))
    y0 = int(round(cv / pixel + half - h / 2))
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
        roi_canonical=(x0, y0, w, h),
        storage=storage if storage is not None else random_storage(rng))


def render_axial(p: Patient, *, only: int | None = None) -> np.ndarray:
    """The axial series in canonical orientation as integer-valued modality values,
    shape (slices, rows, columns), float32; slice k lies (k - narrowest) * gap mm along the
    slice normal from the narrowest one. ``only``: render just that slice (the others stay
    zero; the noise is drawn for all, so that slice is the same as in the full series)."""
    rng = np.random.default_rng([p.seed, p.index, 1])
    n = p.matrix
    c = (np.arange(n) - (n - 1) / 2) * p.pixel_mm
    v, u = np.meshgrid(c, c, indexing="ij")
    bias = 1 + p.bias[0] * u / 80 + p.bias[1] * v / 80 + p.bias[2] * np.exp(
        -(u ** 2 + v ** 2) / (2 * 60.0 ** 2))
    out = np.zeros((p.n_slices, n, n), np.float32)
    for k in range(p.n_slices):
        noise_re, noise_im = rng.normal(0, p.noise, (2, n, n))
        if only is not None and k != only:
            continue
        img = render(p.anatomy, (k - p.narrowest_index) * p.slice_gap_mm, u, v) * bias
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
    ds.Manufacturer = "TFESI Desktop synthetic generator"
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


def write_study(p: Patient, out_dir: Path) -> dict:
    """Write one patient's study into ``out_dir`` and return its manifest row (without the
    study path)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    st = p.storage
    study_uid = _uid(p.seed, p.index, "study")
    series_uid = _uid(p.seed, p.index, "axial")
    volume = render_axial(p)
    n = p.matrix
    r_c, c_c = _canonical_directions(st.tilt_deg)
    normal = np.cross(r_c, c_c)
    centre0 = np.array([0.0, 0.0, LEVEL_Z[p.level]])
    files: list[tuple[Dataset, str]] = []
    names = _file_names(p, p.n_slices + 3)
    narrowest_sop = ""
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
    desc = "T2 TSE AX C-SPINE"
    if st.multiframe:
        sop = _uid(p.seed, p.index, "mf")
        narrowest_sop = sop
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
        echo.EffectiveEchoTime = 100.0
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
    else:
        narrowest_frame = None
        for k in range(p.n_slices):
            sop = _uid(p.seed, p.index, "ax", k)
            if k == p.narrowest_index:
                narrowest_sop = sop
            ds = _base_dataset(p, study_uid, series_uid, sop, MR_IMAGE, st.transfer_syntax)
            ds.SeriesDescription, ds.SeriesNumber = desc, 3
            ds.InstanceNumber = (p.n_slices - k) if st.reverse_instance_numbers else k + 1
            ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NORM"]
            ds.ScanningSequence, ds.SequenceVariant = "SE", "SK"
            ds.EchoTime, ds.RepetitionTime = 100.0, 3500.0
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
    files.extend(_sagittal_localizer(p, study_uid, names[-3:]))
    for ds, name in files:
        ds.save_as(out_dir / name, enforce_file_format=True)
    x, y, w, h = _roi_to_stored(p)
    return dict(
        patient_id=p.patient_id, study_uid=study_uid, series_uid=series_uid,
        sop_instance_uid=narrowest_sop, frame="" if narrowest_frame is None else narrowest_frame,
        roi_x=x, roi_y=y, roi_w=w, roi_h=h, side=p.side, level=p.level,
        nrs_before=p.nrs_before, nrs_after=p.nrs_after, label=p.label,
        width_mm=round(p.width_mm, 3), grade=kim_grade(p.width_mm),
        other_side_grade=kim_grade(p.other_width_mm), p_favourable=round(p.p_favourable, 4),
        storage=st.describe())


def _roi_to_stored(p: Patient) -> tuple[int, int, int, int]:
    """The canonical ROI rectangle expressed in stored pixels (x = column, y = row)."""
    x, y, w, h = p.roi_canonical
    return p.storage.dihedral.rect_from_canonical((x, y, w, h), (p.matrix, p.matrix))


def _file_names(p: Patient, n: int) -> list[str]:
    if p.storage.shuffled_names:
        rng = np.random.default_rng([p.seed, p.index, 2])
        return [f"{rng.integers(1 << 40):010x}" for _ in range(n)]
    return [f"IM{k + 1:04d}.dcm" for k in range(n)]


def _sagittal_localizer(p: Patient, study_uid: str, names: list[str]):
    """A small sagittal T2 localizer: vertebral bodies, discs, canal and cord."""
    series_uid = _uid(p.seed, p.index, "sag")
    n, px = 256, 0.9
    c = (np.arange(n) - (n - 1) / 2) * px
    zz, yy = np.meshgrid(-c + LEVEL_Z[p.level], c, indexing="ij")  # rows go head to foot
    rng = np.random.default_rng([p.seed, p.index, 3])
    out = []
    for k, x in enumerate((-3.0, 0.0, 3.0)):
        img = np.where((np.abs(yy - 3) < 50), 0.3, 0.0)
        body = (yy > -14) & (yy < 3) & (np.mod(zz + 200, 19.0) > 5)
        disc = (yy > -14) & (yy < 2) & (np.mod(zz + 200, 19.0) <= 5)
        img = np.where(body, 0.34, img)
        img = np.where(disc, 0.5, img)
        img = np.where((yy >= 4) & (yy < 17), p.anatomy.csf, img)
        img = np.where((yy >= 7.5) & (yy < 13.5), 0.45, img)
        img = np.where((yy >= 19) & (yy < 30) & (np.mod(zz + 200, 19.0) > 7), 0.12, img)
        img = np.sqrt((img + rng.normal(0, p.noise, img.shape)) ** 2
                      + rng.normal(0, p.noise, img.shape) ** 2)
        arr = np.round(img * p.scale).astype(np.uint16)
        sop = _uid(p.seed, p.index, "sag", k)
        ds = _base_dataset(p, study_uid, series_uid, sop, MR_IMAGE, ExplicitVRLittleEndian)
        ds.SeriesDescription, ds.SeriesNumber, ds.InstanceNumber = "T2 SAG LOCALIZER", 1, k + 1
        ds.EchoTime, ds.RepetitionTime = 90.0, 3000.0
        ds.ImageOrientationPatient = [0.0, 1.0, 0.0, 0.0, 0.0, -1.0]
        top = np.array([x, -(n - 1) / 2 * px, LEVEL_Z[p.level] + (n - 1) / 2 * px])
        ds.ImagePositionPatient = [float(v) for v in top]
        ds.PixelSpacing = [px, px]
        ds.SliceThickness = 3.0
        ds.PhotometricInterpretation = "MONOCHROME2"
        _set_pixels(ds, arr, ExplicitVRLittleEndian)
        out.append((ds, names[k]))
    return out


MANIFEST_COLUMNS = ("patient_id", "study_path", "study_uid", "series_uid", "sop_instance_uid",
                    "frame", "roi_x", "roi_y", "roi_w", "roi_h", "side", "level", "nrs_before",
                    "nrs_after", "label", "width_mm", "grade", "other_side_grade",
                    "p_favourable", "storage")


def _one(args) -> dict:
    seed, index, out, storage, matrix = args
    p = draw_patient(seed, index, storage=storage, matrix=matrix)
    folder = f"P{index:05d}"
    row = write_study(p, Path(out) / folder)
    row["study_path"] = folder
    return row


def make_cohort(out: str | os.PathLike, *, patients: int, seed: int = 0, jobs: int | None = None,
                storage: Storage | None = None, matrix: int | None = None,
                progress=None) -> dict:
    """Write ``patients`` studies, ``manifest.csv`` and ``cohort.json`` into ``out``.

    Returns the cohort summary (also in cohort.json): counts, outcome model, and the best
    achievable AUC (expected under the generator, and on this cohort's own labels).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = jobs or os.cpu_count() or 1
    tasks = [(seed, i, str(out), storage, matrix) for i in range(patients)]
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
        w = csv.DictWriter(f, MANIFEST_COLUMNS)
        w.writeheader()
        w.writerows(rows)
    labels = np.array([r["label"] for r in rows])
    probs = np.array([r["p_favourable"] for r in rows])
    summary = dict(
        generator_version=GENERATOR_VERSION, seed=seed, patients=patients,
        favourable=int(labels.sum()), poor=int((1 - labels).sum()),
        outcome_model=(f"P(favourable) = 1 / (1 + exp(-{OUTCOME_SLOPE} * (w - {OUTCOME_CENTRE})))"
                       ", w = narrowest width (mm) of the injected foramen"),
        best_achievable_auc_expected=round(best_achievable_auc(), 4),
        best_achievable_auc_this_cohort=(round(auc(probs, labels), 4)
                                         if 0 < labels.sum() < len(labels) else None),
        note="Synthetic images from a phantom; made-up names; not patient data.")
    (out / "cohort.json").write_text(json.dumps(summary, indent=1))
    return summary


__all__ = ["MANIFEST_COLUMNS", "Patient", "Storage", "auc", "best_achievable_auc",
           "draw_patient", "favourable_probability", "make_cohort",
           "random_storage", "render_axial", "write_study"]

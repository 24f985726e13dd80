"""Sites in the phantom: what differs between hospitals, applied to the rendered slices (issue 24,
item 1). ``tfesi synth --site NAME`` writes a cohort as that site's scanner would.

A :class:`Site` changes, in this order:

1. the tissue contrast before rendering: fat suppression (fat, foraminal fat and marrow
   darkened by ``fat_suppression``, 0..1) and a vendor's contrast curve (``gamma`` on the
   normalised intensities);
2. the rendered volume: slices thicker than the protocol's 3 mm (each slice mixed with its
   neighbours, partial volume across ``slice_thickness_mm``), in-plane blur (a Gaussian of
   ``blur_mm`` FWHM: a coarser acquisition matrix), a bias field (a left-right gradient of
   ``bias`` at the edge of an 80 mm field), more noise (``noise`` times the image's own noise,
   Rician), and an intensity scale (``scale``: the prediction must not depend on it,
   docs/architecture.md invariant 2);
3. the headers: field strength, slice thickness, ScanOptions ``FS`` when fat is suppressed, and
   the institution's name, so that ``tfesi site-check`` can compare them with a training range.

The image findings' effect on the outcome is the same at every site. A site may see another
patient mix (``severe_share``: the share of its patients whose injected foramen is severely
narrowed, Kim grade 2, 0.8-2.0 mm, against the generator's 0.45; the rest grade 1, 2.05-4.0 mm, the
study's inclusion criteria at every site): ``cohort.draw_patient`` draws the injected foramen's
stenosis from that mix, so the site's outcome rate follows from its anatomy through the outcome
model (``outcome.favourable_probability``), with no label changed. At the default share the
patients are exactly the generator's (tests/test_synth.py checks a fixed digest). A site may
also see another outcome rate (``outcome_shift``, added to the outcome model's logit: other
referrals, co-interventions, follow-up; nothing the images show), so that its patients'
``p_favourable`` and outcomes are drawn again from the shifted probability; at 0 (the default,
and the reference site's) the generator's outcomes are left exactly as drawn.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .outcome import SEVERE_SHARE

PROTOCOL_THICKNESS_MM = 3.0


@dataclass(frozen=True)
class Site:
    name: str
    description: str
    fat_suppression: float = 0.0
    gamma: float = 1.0
    slice_thickness_mm: float = PROTOCOL_THICKNESS_MM
    blur_mm: float = 0.0
    bias: float = 0.0
    noise: float = 0.0
    scale: float = 1.0
    field_strength_t: float = 1.5
    outcome_shift: float = 0.0  # added to the outcome model's logit at this site
    severe_share: float = SEVERE_SHARE  # the patient mix: share of grade-2 injected foramina

    def patient(self, p):
        """The patient as this site sees them: its outcome rate (``outcome_shift``), the
        tissues through its scanner (fat suppression)."""
        if self.outcome_shift:
            rng = np.random.default_rng([p.seed, p.index, 11])
            q = float(1 / (1 + np.exp(-(np.log(p.p_favourable / (1 - p.p_favourable))
                                       + self.outcome_shift))))
            label = int(rng.random() < q)
            after = (int(rng.integers(0, p.nrs_before // 2 + 1)) if label else
                     int(rng.integers(p.nrs_before // 2 + 1, p.nrs_before + 1)))
            p = replace(p, p_favourable=q, label=label, nrs_after=after)
        if not self.fat_suppression:
            return p
        k = 1.0 - self.fat_suppression
        a = p.anatomy
        return replace(p, anatomy=replace(a, fat=a.fat * k, foramen_fat=a.foramen_fat * k,
                                          marrow=a.marrow * (0.5 + 0.5 * k)))

    def transform(self, volume: np.ndarray, p) -> np.ndarray:
        """(slices, rows, columns) modality values -> this site's, integer-valued float32."""
        from scipy.ndimage import gaussian_filter

        rng = np.random.default_rng([p.seed, p.index, 7])
        v = np.asarray(volume, np.float64)
        top = max(float(np.percentile(v, 99.5)), 1.0)
        if self.gamma != 1.0:
            v = top * np.clip(v / top, 0, None) ** self.gamma
        extra = self.slice_thickness_mm - PROTOCOL_THICKNESS_MM
        if extra > 0 and len(v) > 1:
            w = min(extra / (2 * p.slice_gap_mm), 0.5)
            padded = np.concatenate([v[:1], v, v[-1:]])
            v = (1 - 2 * w) * v + w * (padded[:-2] + padded[2:])
        if self.blur_mm > 0:
            sigma = self.blur_mm / 2.355 / p.pixel_mm
            v = gaussian_filter(v, sigma=(0, sigma, sigma))
        if self.bias:
            n = v.shape[-1]
            u = (np.arange(n) - (n - 1) / 2) * p.pixel_mm
            v = v * (1 + self.bias * u / 80)[None, None, :]
        if self.noise:
            s = self.noise * p.noise * p.scale
            v = np.sqrt((v + rng.normal(0, s, v.shape)) ** 2 + rng.normal(0, s, v.shape) ** 2)
        return np.round(np.clip(v * self.scale, 0, 65535)).astype(np.float32)

    def stamp(self, ds) -> None:
        """This site's acquisition headers on a dataset about to be written."""
        ds.MagneticFieldStrength = self.field_strength_t
        ds.InstitutionName = f"Synthetic site {self.name} - no real patient"
        if "SliceThickness" in ds:
            ds.SliceThickness = self.slice_thickness_mm
        for group in ds.get("SharedFunctionalGroupsSequence") or []:
            for pm in group.get("PixelMeasuresSequence") or []:
                pm.SliceThickness = self.slice_thickness_mm
        if self.fat_suppression >= 0.5:
            ds.ScanOptions = "FS"

    def describe(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


SITES = {s.name: s for s in (
    Site("reference", "the training images' scanner and protocol"),
    Site("fatsat", "fat suppression on (80 %), otherwise the protocol",
         fat_suppression=0.8),
    Site("fatsat-half", "fat suppression at half strength", fat_suppression=0.5),
    Site("hospital-b", "another vendor at 1.0 T: twice the noise, 4.5 mm slices, 1.8 mm blur, "
         "a flatter contrast curve", gamma=0.8, slice_thickness_mm=4.5, blur_mm=1.8, noise=1.0,
         field_strength_t=1.0),
    Site("highfield", "3 T: a stronger bias field, brighter images (scale x2)", bias=0.3,
         scale=2.0, field_strength_t=3.0),
    Site("fatsat-lowrate", "fat suppression on (80 %) and fewer favourable outcomes (logit "
         "-1: other referrals)", fat_suppression=0.8, outcome_shift=-1.0),
    Site("tertiary-referral", "the reference scanner, but a referral centre's patients: 80 % "
         "with a severely narrowed foramen (Kim grade 2) against 45 %", severe_share=0.8),
)}


def get_site(name: str) -> Site:
    from ..errors import TfesiError

    try:
        return SITES[name]
    except KeyError:
        raise TfesiError(f"Unknown site {name!r}; one of {', '.join(SITES)}.") from None

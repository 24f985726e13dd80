"""The canal finder on the phantom's hard canal cases (docs/architecture.md, invariant 10): the
extremes a real cervical MRI shows, rendered with the phantom, found every time within 2 mm.

Each case combines one extreme of each: canal 20 x 11 mm or 27 x 17 mm; a thin CSF ring (the
cord fills 75 % of the canal) or a thick one (50 %); grey matter brighter or darker than white;
T2 (spin echo) or T2* (gradient echo); 0.4 or 1.0 mm pixels; the neck rotated -15 or +15
degrees; stored in one of the eight orientations. Sixteen cases cover every pair of extremes
of the first four (size, ring, contrast, pixel) in full; the others alternate."""

import dataclasses
import itertools

import numpy as np
import pytest

from tests.offcentre import narrowest_slice, offcentre_patient, true_canal_mm
from tfesi_desktop.core.geometry import Dihedral
from tfesi_desktop.core.midline import find_canal

SIZES = {"small": (10.0, 5.5), "large": (13.5, 8.5)}
RINGS = {"thin": 0.75, "thick": 0.5}
CONTRASTS = ("T2", "T2*")
PIXELS = {0.4: 512, 1.0: 200}
CASES = list(itertools.product(SIZES, RINGS, CONTRASTS, PIXELS))


def hard_case(i: int):
    size, ring, contrast, pixel = CASES[i]
    rotation = 15.0 if i % 2 else -15.0
    grey = 0.2 if (i // 2) % 2 else -0.12
    dihedral = Dihedral.all()[i % 8]
    p = offcentre_patient(seed=11, index=i, centre=(12.0 * (-1) ** i, 8.0),
                          rotation_deg=rotation, dihedral=dihedral, matrix=PIXELS[pixel])
    canal = SIZES[size]
    a = dataclasses.replace(p.anatomy, canal=canal,
                            cord=(canal[0] * RINGS[ring], canal[1] * RINGS[ring]),
                            grey_matter=grey, contrast=contrast)
    return dataclasses.replace(p, anatomy=a, pixel_mm=pixel, contrast=contrast)


@pytest.mark.parametrize("i", range(len(CASES)), ids=lambda i: "-".join(map(str, CASES[i])))
def test_hard_case_is_found_within_2_mm(i):
    """The floor is 100 %: every case. The small T2 canal with a thin CSF ring amid the
    foramina's bright fat was missed (0.35 at best against the whole templates) until the close
    templates (core/midline.py) came in."""
    p = hard_case(i)
    values, g = narrowest_slice(p)
    canal = find_canal(values, g)
    assert canal is not None
    assert float(np.linalg.norm(np.array(canal.centre_mm) - true_canal_mm(p))) <= 2.0


@pytest.mark.parametrize("kind", ["noise", "uniform", "ramp"])
def test_images_without_a_spine_say_not_found(kind):
    from tfesi_desktop.core.geometry import SliceGeometry

    rng = np.random.default_rng(1)
    img = {"noise": rng.normal(100, 30, (256, 256)),
           "uniform": np.full((256, 256), 80.0),
           "ramp": np.add.outer(np.arange(256.0), np.arange(256.0))}[kind]
    g = SliceGeometry((0, 0, 0), (1, 0, 0), (0, 1, 0), (0.7, 0.7), (256, 256))
    assert find_canal(img.astype(np.float32), g) is None


def test_fresh_phantoms_in_any_storage_give_the_canal_or_nothing():
    """Fresh patients with the cohort's own random storage (flips, tilt, rescale...): the canal
    within 3 mm, never something else (the old finder took the neck's edge for it on 4 of 40)."""
    from tfesi_desktop.core.synth.cohort import draw_patient

    found = 0
    for i in range(8):
        p = draw_patient(2027, i)
        values, g = narrowest_slice(p)
        canal = find_canal(values, g)
        if canal is not None:
            found += 1
            assert np.linalg.norm(np.array(canal.centre_mm) - true_canal_mm(p)) < 3.0, i
    assert found >= 7

"""``tfesi site-check`` (issue 24, item 2): the distribution check over a site's whole batch,
acquisition parameters against the training range, and local AUC/calibration with outcomes."""

import csv
import json

import pytest

from tfesi_desktop.cli import main
from tfesi_desktop.core.site_check import binomial_sf, compare_acquisition


@pytest.fixture(scope="module")
def t1_site(tmp_path_factory):
    """A site whose scanner gives another contrast (T1): every image unlike the training's."""
    from tfesi_desktop.core.synth.cohort import make_cohort

    out = tmp_path_factory.mktemp("t1site")
    make_cohort(out, patients=4, seed=303, jobs=1, contrast="T1")
    return out / "manifest.csv"


def test_a_training_like_site_resembles_and_gets_its_auc_and_calibration(cohort, capsys):
    manifest = cohort[0] / "manifest.csv"
    assert main(["site-check", str(manifest), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["patients"] == 6 and not r["distribution"]["differs"]
    assert r["verdict"].startswith("This site's images resemble the training images")
    o = r["outcomes"]
    assert o["favourable"] == 3 and 0 <= o["auc_ci95"][0] <= o["auc"] <= o["auc_ci95"][1] <= 1
    assert {"slope", "intercept", "ece"} <= set(o["calibration"])
    # the demo card records no acquisition range: said so, nothing claimed
    assert r["acquisition"]["training_range_from"] is None
    assert all(p["outside"] is None for p in r["acquisition"]["parameters"])
    assert main(["site-check", str(manifest)]) == 0
    text = capsys.readouterr().out
    assert "records no training range" in text and "AUC" in text and "ECE" in text


def test_a_site_with_another_contrast_differs_and_acquisition_comes_from_a_manifest(
        t1_site, cohort, capsys):
    assert main(["site-check", str(t1_site), "--training-manifest",
                 str(cohort[0] / "manifest.csv"), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["distribution"]["flagged"] == 4 and r["distribution"]["differs"]
    assert r["verdict"].startswith("This site's images differ from the training images: "
                                   "validate locally before use")
    assert r["acquisition"]["training_range_from"].startswith("the training manifest")
    thickness = next(p for p in r["acquisition"]["parameters"]
                     if p["parameter"] == "slice_thickness_mm")
    assert thickness["site"] == [3.0, 3.0] and thickness["outside"] is False


def test_a_site_without_outcomes_is_checked_from_its_folder(cohort, tmp_path, capsys):
    src = cohort[0] / "manifest.csv"
    with open(src, newline="") as f:
        rows = list(csv.DictReader(f))
    folder = cohort[0]
    blank = tmp_path / "manifest.csv"
    with open(blank, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows({**r, "label": "", "study_path": str(folder / r["study_path"])}
                    for r in rows)
    assert main(["site-check", str(tmp_path), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert "outcomes" not in r and r["patients"] == 6
    assert "validate on local outcomes" in r["verdict"]


def test_acquisition_outside_the_range_needs_more_than_a_tenth_of_the_patients():
    training = {"pixel_mm": [0.5, 0.8], "slice_thickness_mm": [3.0, 3.0],
                "fat_suppressed": [False]}
    site = [{"pixel_mm": 0.6, "slice_thickness_mm": 4.5, "field_strength_t": 3.0,
             "fat_suppressed": True}] * 9 + [{"pixel_mm": 1.2, "slice_thickness_mm": 3.0,
                                              "field_strength_t": 3.0, "fat_suppressed": True}]
    got = {p["parameter"]: p for p in compare_acquisition(site, training)}
    assert got["pixel_mm"]["patients_outside"] == 1 and got["pixel_mm"]["outside"] is False
    assert got["slice_thickness_mm"]["outside"] and got["fat_suppressed"]["outside"]
    assert got["field_strength_t"]["outside"] is None  # no training range: unknown


def test_binomial_tail():
    assert binomial_sf(0, 10, 0.02) == pytest.approx(1.0)
    assert binomial_sf(3, 100, 0.01) == pytest.approx(0.0794, abs=1e-3)


def test_a_phantom_site_changes_the_images_and_headers_site_check_reads(cohort, tmp_path):
    """tfesi synth --site (core/synth/sites.py): fat suppressed, 4.5 mm slices, 1.0 T."""
    import numpy as np

    from tfesi_desktop.core.manifest import case_region, read_manifest
    from tfesi_desktop.core.site_check import acquisition
    from tfesi_desktop.core.synth.sites import SITES, Site

    assert main(["synth", str(tmp_path / "ref"), "--patients", "1", "--seed", "5",
                 "--jobs", "1", "--storage", "plain"]) == 0
    assert main(["synth", str(tmp_path / "b"), "--patients", "1", "--seed", "5",
                 "--jobs", "1", "--storage", "plain", "--site", "hospital-b"]) == 0
    assert main(["synth", str(tmp_path / "x"), "--site", "nowhere"]) == 2
    (ref,), (b,) = (read_manifest(tmp_path / d / "manifest.csv") for d in ("ref", "b"))
    assert acquisition(ref) | {"pixel_mm": 0} == {"pixel_mm": 0, "slice_thickness_mm": 3.0,
                                                  "field_strength_t": 1.5,
                                                  "fat_suppressed": None}
    assert acquisition(b)["slice_thickness_mm"] == 4.5
    assert acquisition(b)["field_strength_t"] == 1.0
    x_ref, x_b = (case_region(c).values for c in (ref, b))
    assert x_ref.shape == x_b.shape and not np.array_equal(x_ref, x_b)
    # each change on its own: blur smooths, thicker slices mix neighbours, the scale scales
    from tfesi_desktop.core.synth.cohort import draw_patient, render_axial

    p = draw_patient(5, 0, matrix=256)
    v = render_axial(p)
    rough = np.abs(np.diff(v, axis=2)).mean()
    assert np.abs(np.diff(Site("s", "", blur_mm=2.0).transform(v, p), axis=2)).mean() < rough
    thick = Site("s", "", slice_thickness_mm=6.0).transform(v, p)
    assert np.abs(np.diff(thick, axis=0)).mean() < np.abs(np.diff(v, axis=0)).mean()
    np.testing.assert_allclose(Site("s", "", scale=2.0).transform(v, p), 2 * v)
    fat = SITES["fatsat"].patient(p).anatomy
    assert fat.fat == pytest.approx(0.2 * p.anatomy.fat)


def test_a_recorded_differing_site_marks_every_prediction_until_validated(t1_site, tmp_path,
                                                                          capsys):
    """`tfesi site-check --record`: where the site differs, every prediction of that model says
    so (tfesi predict and the PDF report, through the prediction's source note the window shows
    too) until `tfesi site-check --validated`."""
    import shutil
    import subprocess
    import sys

    from tfesi_desktop.core.manifest import read_manifest
    from tfesi_desktop.core.paths import demo_manifest, demo_study
    from tfesi_desktop.core.site_note import record_path

    (case,) = read_manifest(demo_manifest())
    args = [str(demo_study()), "--slice", case.slice_key, "--roi", ",".join(map(str, case.roi)),
            "--side", case.side, "--level", "C6"]

    def predicted():
        assert main(["predict", *args, "--json"]) == 0
        return json.loads(capsys.readouterr().out)

    assert predicted()["source_note"] is None
    assert main(["site-check", "--validated"]) == 2  # nothing recorded yet: a plain error
    capsys.readouterr()
    assert main(["site-check", str(t1_site), "--record"]) == 0
    assert "every prediction of this model now says" in capsys.readouterr().out
    assert record_path().is_file() and "P0" not in record_path().read_text()  # counts only
    p = predicted()
    assert "found this site's images differ" in p["source_note"] and not p["reliable"]
    assert "100% of 4 patients flagged" in p["source_note"]
    if shutil.which("pdftotext"):
        pdf = tmp_path / "r.pdf"
        r = subprocess.run([sys.executable, "-m", "tfesi_desktop.cli", "report", *args, "--out",
                            str(pdf)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True,
                              check=True).stdout
        assert "site check of" in " ".join(text.split())
    assert main(["site-check", "--validated"]) == 0
    capsys.readouterr()
    assert predicted()["source_note"] is None


def test_evaluate_over_several_sites_gives_a_table_and_a_forest_plot(cohort, t1_site,
                                                                     tmp_path, capsys):
    """`tfesi evaluate --site NAME=CSV ...` (issue 24, item 5): one row per site, a forest
    plot."""
    import numpy as np
    from PIL import Image

    out = tmp_path / "ev"
    assert main(["evaluate", "--site", f"reference={cohort[0] / 'manifest.csv'}", "--site",
                 f"t1={t1_site}", "--out", str(out), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["sites"]
    assert [r["site"] for r in rows] == ["reference", "t1"]
    ref, t1 = rows
    assert ref["patients"] == 6 and ref["outcome_rate"] == 0.5
    assert 0 <= ref["auc_ci95"][0] <= ref["auc"] <= ref["auc_ci95"][1] <= 1
    assert {"slope", "intercept", "ece", "best_achievable_auc"} <= set(ref)
    assert ref["flagged_share"] < t1["flagged_share"] == 1.0
    assert "reference" in (out / "sites.txt").read_text()
    img = np.asarray(Image.open(out / "forest.png").convert("L"))
    assert img.shape[0] > 150 and img.std() > 10
    assert main(["evaluate", "--site", "x=/nonexistent.csv"]) == 2


def test_a_site_can_see_another_outcome_rate_and_the_reference_site_does_not():
    """Site.outcome_shift (core/synth/sites.py): the outcome drawn again from the shifted
    probability; at 0 the generator's patient is returned unchanged."""
    import numpy as np

    from tfesi_desktop.core.synth.cohort import draw_patient
    from tfesi_desktop.core.synth.sites import SITES, Site

    ps = [draw_patient(7, i, matrix=256) for i in range(300)]
    assert all(SITES["reference"].patient(p) is p for p in ps[:5])
    low = [Site("s", "", outcome_shift=-1.5).patient(p) for p in ps]
    assert all(q.p_favourable < p.p_favourable for p, q in zip(ps, low, strict=True))
    assert np.mean([q.label for q in low]) < np.mean([p.label for p in ps]) - 0.15
    assert all((q.nrs_after <= q.nrs_before // 2) == bool(q.label) for q in low)
    assert all(q.anatomy == p.anatomy for p, q in zip(ps, low, strict=True))
    assert SITES["fatsat-lowrate"].outcome_shift < 0

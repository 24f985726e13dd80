"""``tfesi federate`` (issue 24, item 4): three sites as separate processes on loopback train one
bundle on Flower; only weights and statistics cross the wire."""

import csv
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from tfesi_desktop.core.errors import TfesiError
from tfesi_desktop.core.training import federated as fed


def test_moments_give_the_distribution_that_ood_fit_gives_on_pooled_data():
    from tfesi_desktop.core.ood import fit

    rng = np.random.default_rng(0)
    parts = [rng.normal(i, 1 + i, (40, 12)) @ rng.normal(size=(12, 12)) for i in range(3)]
    pooled = fit(np.concatenate(parts), k=5)
    m = [sum(v) for v in zip(*(fed.moments(p) for p in parts), strict=True)]
    got = fed.ppca_from_moments(m[0][0], m[1], m[2], k=5)
    np.testing.assert_allclose(got.mean, pooled.mean, atol=1e-10)
    np.testing.assert_allclose(got.variances, pooled.variances, rtol=1e-8)
    np.testing.assert_allclose(got.residual_variance, pooled.residual_variance, rtol=1e-8)
    x = rng.normal(size=(5, 12))
    np.testing.assert_allclose(got.distance(x), pooled.distance(x), rtol=1e-6)


def test_the_pooled_percentile_from_distance_histograms_is_within_a_percent():
    rng = np.random.default_rng(4)
    parts = [rng.lognormal(i * 0.3, 1.0, 300) for i in range(3)]
    h = sum(fed.distance_histogram(p) for p in parts)
    exact = np.percentile(np.concatenate(parts), 99)
    assert exact <= fed.percentile_from_histogram(h, 99) <= exact * 1.02


def test_federated_newton_platt_equals_platt_on_the_pooled_patients():
    from tfesi_desktop.core.stats import fit_platt

    rng = np.random.default_rng(1)
    sites = []
    for shift in (-1.0, 0.0, 2.0):
        z = rng.normal(shift, 2.0, 50)
        sites.append((z, (rng.random(50) < 1 / (1 + np.exp(-(0.6 * z - 0.3)))).astype(float)))
    theta, state = np.array([1.0, 0.0]), None
    for _ in range(fed.NEWTON_STEPS):
        terms = [fed.platt_terms(theta, z, y) for z, y in sites]
        theta, state = fed.platt_update(theta, *(sum(t[i] for t in terms) for i in range(2)),
                                        sum(t[2][0] for t in terms), state)
    theta = state["theta"]
    t, b = fit_platt(np.concatenate([y for _, y in sites]),
                     np.concatenate([z for z, _ in sites]))
    assert 1 / theta[0] == pytest.approx(t, rel=1e-4) and theta[1] == pytest.approx(b, abs=1e-4)


def test_federated_platt_backs_off_when_a_step_raises_the_loss():
    """Nearly constant logits (an untrained network): plain Newton would jump to the bounds."""
    rng = np.random.default_rng(3)
    z, y = rng.normal(0, 1e-3, 6), np.array([1, 0, 1, 0, 1, 0], float)
    theta, state = np.array([1.0, 0.0]), None
    for _ in range(fed.NEWTON_STEPS):
        terms = fed.platt_terms(theta, z, y)
        theta, state = fed.platt_update(theta, terms[0], terms[1], terms[2][0], state)
    assert state["loss"] <= fed.platt_terms(np.array([1.0, 0.0]), z, y)[2][0] + 1e-9
    assert abs(state["theta"][1]) < 1


def test_pooled_metrics_from_bins_match_the_patients_to_display_precision():
    from tfesi_desktop.core.stats import auc_delong

    rng = np.random.default_rng(2)
    y = rng.random(300) < 0.5
    p = np.clip(0.5 + 0.25 * (y - 0.5) + rng.normal(0, 0.2, 300), 0.001, 0.999)
    fav, poor = fed.probability_histograms(p, y)
    m = fed.pooled_metrics(fav, poor)
    assert m["n"] == 300 and m["favourable"] == int(y.sum())
    assert m["auc"] == pytest.approx(auc_delong(y, p).auc, abs=0.005)
    assert 0 < m["calibration"]["probability_spread"] < 1


def test_the_coordinator_refuses_an_image_or_an_unexpected_value():
    c = fed.Coordinator(fed.FederatedConfig(sites=1, rounds=1), [np.zeros((3, 3))], [(3, 3)])
    with pytest.raises(TfesiError, match="shapes"):
        c.receive(1, [([np.zeros((100, 100, 3))], 4, {"site": "a", "auc": 0.5, "loss": 1.0},
                       0, 0)])
    with pytest.raises(TfesiError, match="unexpected"):
        c.receive(1, [([np.zeros((3, 3))], 4, {"site": "a", "auc": 0.5, "loss": 1.0,
                                               "labels": "1,0,1"}, 0, 0)])


@pytest.fixture(scope="module")
def sites(tmp_path_factory):
    from tfesi_desktop.core.synth.cohort import make_cohort

    out = []
    for i, seed in enumerate((303, 307, 312)):  # 3 favourable and 3 poor each
        d = tmp_path_factory.mktemp(f"site{i + 1}")
        make_cohort(d, patients=6, seed=seed, jobs=1)
        out.append(d / "manifest.csv")
    return out


# at most 2 minutes for the whole run; a loaded machine may be given more
LIMIT_S = float(os.environ.get("TFESI_FEDERATE_TEST_LIMIT_S", 120))


@pytest.mark.slow
def test_three_sites_on_loopback_make_a_bundle_and_no_pixel_crosses_the_wire(sites, tmp_path,
                                                                            capsys):
    """The coordinator runs here (so that it can record what it receives); each site is its own
    process that reads only its manifest."""
    from tfesi_desktop.cli import main
    from tfesi_desktop.core.manifest import load_regions

    address = f"127.0.0.1:{fed.free_port()}"
    out = tmp_path / "federated"
    cfg = fed.FederatedConfig(sites=3, rounds=1, local_epochs=1, batch_size=4,
                              round_timeout_s=LIMIT_S)
    clients, logs = [], []
    try:
        for i, m in enumerate(sites):  # they wait for the coordinator to listen
            logs.append(open(tmp_path / f"site{i + 1}.log", "w"))  # noqa: SIM115
            clients.append(subprocess.Popen(
                [sys.executable, "-m", "tfesi_desktop.cli", "federate", "client",
                 "--manifest", str(m), "--site-name", f"clinic{i + 1}", "--address", address],
                stderr=logs[-1]))
        # the bound: past it the sites are ended, so the coordinator's round fails
        watchdog = threading.Timer(LIMIT_S, lambda: [c.kill() for c in clients])
        watchdog.start()
        try:  # Flower's coordinator runs in the main thread (it installs signal handlers)
            result = fed.run_coordinator(cfg, out, address=address, name="fed-test",
                                         keep_payloads=True)
        finally:
            watchdog.cancel()
        codes = [c.wait(timeout=30) for c in clients]
    finally:
        for c in clients:
            if c.poll() is None:
                c.kill()
                c.wait()
        for f in logs:
            f.close()
    assert codes == [0, 0, 0], [(tmp_path / f"site{i + 1}.log").read_text()[-2000:]
                                for i in range(3)]
    coord, card, log = result["coordinator"], result["card"], result["log"]

    # the card lists the sites with counts only; the bundle is a normal one
    assert [s["name"] for s in card["training"]["sites"]] == ["clinic1", "clinic2", "clinic3"]
    assert all(set(s) == {"name", "patients", "train", "validation"} and s["patients"] == 6
               for s in card["training"]["sites"])
    assert card["metrics"]["validation"]["n"] == 6
    assert card["calibration"]["temperature"] > 0 and card["ood"]["feature_threshold"] > 0
    # the acquisition range site-check compares a new site with (ranges, not patients)
    assert card["training"]["acquisition"]["slice_thickness_mm"] == [3.0, 3.0]
    assert main(["model", "info", str(out)]) == 0
    assert "federated over 3 sites" in capsys.readouterr().out
    study = sites[0].parent
    with open(sites[0], newline="") as f:
        row = next(csv.DictReader(f))
    assert main(["predict", str(study / row["study_path"]), "--slice", row["sop_instance_uid"],
                 "--roi", ",".join(row[k] for k in ("roi_x", "roi_y", "roi_w", "roi_h")),
                 "--side", row["side"], "--model", str(out), "--override"]) == 0

    # every message: the network's weight shapes or the statistics' shapes, scalar metrics
    weights = [tuple(s) for s in coord.weight_shapes]
    stats = {(1,), (128,), (128, 128), (16,), (16, 16), (fed.DIST_BINS,), (2,), (2, 2),
             (fed.PROB_BINS,)}
    for msg in coord.messages:
        if msg["task"] == "train":
            assert msg["shapes"] == weights
        else:
            assert set(msg["shapes"]) <= stats, msg
        assert set(msg["keys"]) <= set(fed.METRIC_KEYS[msg["task"]])
        assert all(k.endswith(("_min", "_max")) for k in msg["keys"]
                   if k not in {"site", "auc", "loss", "train", "validation", "synthetic",
                                "flagged"})
    assert len(coord.messages) == 3 * len(fed.schedule(1))
    # and no stored pixels or model inputs of any site's patients are in the bytes received
    wire = b"".join(coord.payloads)
    for m in sites:
        regions, _, _ = load_regions(m)
        for r in regions:
            v = r.values
            x = r.input().image
            for needle in (v[v.shape[0] // 2, :16].tobytes(), x[50, 40:56, 0].tobytes(),
                           x[50, 40:56].astype(np.float64).tobytes()):
                assert needle not in wire
    # the run log: rounds, AUC per round and site, bytes each way per client
    first = log["rounds"][0]
    assert first["task"] == "train" and set(first["sites"]) == {"clinic1", "clinic2", "clinic3"}
    assert all(s["bytes_from_site"] > 1e6 and "auc" in s for s in first["sites"].values())

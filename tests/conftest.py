import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def cohort(tmp_path_factory):
    """A small synthetic cohort with random storage variants (6 patients)."""
    from tfesi_desktop.core.synth.cohort import make_cohort

    out = tmp_path_factory.mktemp("cohort")
    summary = make_cohort(out, patients=6, seed=13, jobs=2)  # 3 favourable, 3 poor
    return out, summary


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """Installed models and saved state go to a temporary folder in every test."""
    monkeypatch.setenv("TFESI_HOME", str(tmp_path / "tfesi-home"))


def make_test_bundle(out, variant="original", seed=0):
    """A real bundle of an untrained network (batch-norm statistics made non-trivial), exported
    through the same code as a trained one. Slow (about 30 s): use the session fixture."""
    import numpy as np

    from tfesi_desktop.core.training.export import write_bundle
    from tfesi_desktop.core.training.network import build_model

    model, info = build_model(variant, init="random", seed=seed)
    rng = np.random.default_rng(seed)
    try:
        bn = model.get_layer("batchnorm")
        g, b, mu, v = bn.get_weights()
        bn.set_weights([g * rng.uniform(0.5, 1.5, g.shape), b + rng.normal(0, 0.1, b.shape),
                        mu + rng.normal(0, 0.1, mu.shape), v * rng.uniform(0.5, 2, v.shape)])
    except ValueError:
        pass
    card = {"name": f"test-{variant}", "version": "0.0.1", "synthetic_training_data": True,
            "architecture": info,
            "metrics": {"validation": {"auc": 0.5, "auc_ci95": [0.4, 0.6], "accuracy": 0.5,
                                       "n": 10}}}
    write_bundle(model, out, card=card)
    return model


_BUNDLES: dict = {}


def _variant_bundle(tmp_path_factory, variant, seed):
    if variant not in _BUNDLES:
        path = tmp_path_factory.mktemp("bundle") / variant
        _BUNDLES[variant] = (make_test_bundle(path, variant, seed=seed), path)
    return _BUNDLES[variant]


@pytest.fixture(scope="session")
def test_bundle(tmp_path_factory):
    """Path of an exported (untrained) original-architecture bundle."""
    return _variant_bundle(tmp_path_factory, "original", 0)[1]


@pytest.fixture(scope="session")
def variant_bundles(tmp_path_factory):
    """{variant: (keras model, bundle path)} for the three architectures: the paper's network
    with and without Dropout/BatchNorm ('from-scratch' is the latter's architecture with another
    initialisation, so exporting it again would test nothing new), and the compact network the
    demonstration model uses."""
    return {v: _variant_bundle(tmp_path_factory, v, i)
            for i, v in enumerate(("original", "no-regularization", "compact"))}

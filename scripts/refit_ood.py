"""Refit a bundle's out-of-distribution statistics (``ood.npz``, the card's ``ood``) from its
training cohort, as the program computes them now, without retraining (development script).

The demo bundle's statistics were fitted when a prediction rested on the chosen slice; since
version 2.0.1 it rests on the slice its neighbourhood rule picks (docs/architecture.md,
invariant 8), whose ROI set and pooled features differ, and the stored thresholds flagged 7 %
of the training cohort's own held-out patients against the 1-2 % that a 99th percentile means.
This refits both distributions (core/ood.py) with the run-time path of ``tfesi train``
(core/training/train.py, ``ensemble_scores``) on the same split, and rewrites the card's digest
of ``ood.npz``; re-pin the demo digest afterwards (scripts/pin_demo_digest.py).

    python scripts/refit_ood.py BUNDLE MANIFEST [--seed 0 --validation 0.2]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle", type=Path)
    ap.add_argument("manifest", type=Path, help="the training cohort's manifest.csv")
    ap.add_argument("--seed", type=int, default=0, help="the split's seed (the card's)")
    ap.add_argument("--validation", type=float, default=0.2)
    args = ap.parse_args(argv)
    from tfesi_desktop.core.bundle import CARD, sha256_file
    from tfesi_desktop.core.manifest import load_regions
    from tfesi_desktop.core.ood import OOD_FILE, fit_training_distribution
    from tfesi_desktop.core.runtime import Predictor
    from tfesi_desktop.core.training.train import ensemble_scores, split

    regions, y, _ = load_regions(args.manifest, around=1)
    tr, va = split(y, args.validation, args.seed)
    pred = Predictor(args.bundle, quiet=True)
    _, f_va, h_va = ensemble_scores(pred, [regions[i] for i in va], progress=print)
    _, f_tr, h_tr = ensemble_scores(pred, [regions[i] for i in tr], progress=print)
    dist = fit_training_distribution(f_tr, h_tr, f_va, h_va)
    before = [pred.ood.distance(f, h) > 1.0 for f, h in zip(f_va, h_va, strict=True)]
    dist.save(args.bundle / OOD_FILE)
    flagged = [dist.distance(f, h) > dist.threshold for f, h in zip(f_va, h_va, strict=True)]
    card = json.loads((args.bundle / CARD).read_text())
    card["ood"].update({"feature_threshold": round(dist.features.threshold, 6),
                        "intensity_threshold": round(dist.intensities.threshold, 6),
                        "flagged_validation": round(float(np.mean(flagged)), 4),
                        "refitted": "on the ROI sets of the slice the neighbourhood rule "
                                    "rests on (scripts/refit_ood.py)"})
    card["files"][OOD_FILE] = sha256_file(args.bundle / OOD_FILE)
    (args.bundle / CARD).write_text(json.dumps(card, indent=1))
    print(f"held-out patients flagged: {np.mean(before):.3f} before, {np.mean(flagged):.3f} "
          f"after; thresholds features {dist.features.threshold:.3f}, intensities "
          f"{dist.intensities.threshold:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

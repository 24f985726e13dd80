"""Re-validate an already trained network for this program's stable prediction, without
training it again: score a cohort it never saw with the exported LiteRT model over the ROI set,
fit Platt scaling and the feature distribution on one half and report the held-out metrics on
the other (``train.bundle_from_trained``), and keep the card's description of how the network
was actually trained.

Used for the shipped demonstration model, trained on a GPU on 1,500 version-1 phantoms (see the
README): a CPU cannot retrain it for the version-2 phantom within a session (closing note of
issue 10), so it was re-validated on fresh version-1 patients instead.

    python scripts/revalidate_demo.py MODEL.keras OLD_CARD.json MANIFEST OUT_BUNDLE
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import keras
import numpy as np

from tfesi_desktop.core.bundle import CARD, load_bundle
from tfesi_desktop.core.fileio import write_atomically
from tfesi_desktop.core.manifest import load_regions
from tfesi_desktop.core.training.train import binary_metrics, bundle_from_trained, split


def main(keras_file: str, old_card: str, manifest: str, out: str) -> None:
    old = json.loads(Path(old_card).read_text())
    model = keras.saving.load_model(keras_file, safe_mode=True)
    regions, y, _ = load_regions(manifest)
    fit_part, held_out = split(y, 0.5, 0)
    x_fit = np.stack([regions[i].input().image for i in fit_part])
    p_fit = model.predict(x_fit, batch_size=64, verbose=0).reshape(-1)
    t = old["training"]
    record = {
        "config": {"validation_fraction": 0.5, "seed": 0, "learning_rate": t["learning_rate"],
                   "batch_size": t["batch_size"], "epochs": t["epochs"]},
        "architecture": old["architecture"], "backend": t["backend"], "device": t["device"],
        "augmentation": None, "train_indices": fit_part.tolist(),
        "validation_indices": held_out.tolist(), "seconds": t["seconds"],
        "images_per_second": t["images_per_second"],
        "metrics": {"training": binary_metrics(y[fit_part], p_fit)},
    }
    card = bundle_from_trained(model, record, regions, y, Path(manifest), Path(out),
                               name=old["name"], version="1.1.0", precision="float16",
                               synthetic=True, overwrite=True,
                               progress=lambda m: print(m, file=sys.stderr))
    cohort = json.loads((Path(manifest).parent / "cohort.json").read_text())
    card["training"] = dict(t, initialization="random", augmentation="off",
                            targets="the 0/1 outcome")
    card["metrics"]["training"] = old["metrics"]["training"]
    card["revalidation"] = {
        "data": f"{len(y)} fresh synthetic patients from generator version "
                f"{cohort['generator_version']} (seed {cohort['seed']}), never seen in training",
        "calibration_and_ood_fitted_on": len(fit_part), "metrics_on": len(held_out),
        "why": "the network was trained for preprocessing version 1 and one ROI; version 2 "
               "predicts over a set of 13 ROIs with calibration and an out-of-distribution "
               "check, which were fitted here"}
    card["limitations"] = card["limitations"] + [
        "Trained on the version-1 phantom, whose foramen was darker at the ROI's centre when "
        "narrow (a shortcut the network learned: its heat map follows the ROI, not the lesion). "
        "Not validated on version-2 phantoms, which its distribution check flags as unlike its "
        "training images."]
    card["changelog"] = old.get("changelog", [])[:1] + [
        "1.1.0: re-validated for preprocessing version 2 (13-ROI set, Platt scaling, feature "
        "distribution) on fresh version-1 synthetic patients; weights unchanged"]
    write_atomically(Path(out) / CARD, json.dumps(card, indent=1).encode(), private=False)
    load_bundle(Path(out))
    print(json.dumps(card["metrics"]["validation"], indent=1))


if __name__ == "__main__":
    main(*sys.argv[1:5])

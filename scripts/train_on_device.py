"""Train the demonstration model on a lent GPU machine with Keras 3 on JAX (no TensorFlow there).

Usage (on the device, from the repository root):
    KERAS_BACKEND=jax python3 scripts/train_on_device.py MANIFEST OUT [--arms original,...]
        [--init random|imagenet] [--soft-labels p_favourable]

MANIFEST's regions cache (``.<name>.regions-v2-<hash>.npz``, made here by
``tfesi_desktop.core.manifest.load_regions``; carry it with the manifest, not the studies) gives
the stored region around each ROI, so training jitters ROIs with the one model-input function
exactly as on a CPU. Writes OUT/<arm>/record.json
for every arm and OUT/original/model.keras split into 15 MB parts (the device returns files of
16 MB at most); join them with ``cat model.keras.part-* > model.keras`` and bundle with
``tfesi train MANIFEST --from-trained DIR --out BUNDLE``.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from tfesi_desktop.core.manifest import load_regions  # noqa: E402
from tfesi_desktop.core.training.train import (  # noqa: E402
    TrainConfig,
    fit_and_evaluate,
    save_trained,
)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("manifest")
    ap.add_argument("out")
    ap.add_argument("--arms", default="original")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=26)
    ap.add_argument("--init", choices=("imagenet", "random"), default="random")
    ap.add_argument("--soft-labels", default=None)
    ap.add_argument("--budget-s", type=float, default=420.0,
                    help="start no further arm after this many seconds")
    args = ap.parse_args()
    t0 = time.monotonic()
    regions, y, cases = load_regions(args.manifest)
    targets = (np.array([float(c.row[args.soft_labels]) for c in cases])
               if args.soft_labels else None)
    print(f"{len(y)} inputs, {int(y.sum())} favourable", flush=True)
    for arm in args.arms.split(","):
        if arm != "original" and time.monotonic() - t0 > args.budget_s:
            print(f"skipping {arm}: time budget spent", flush=True)
            continue
        cfg = TrainConfig(variant=arm, epochs=args.epochs, seed=args.seed, init=args.init,
                          soft_labels=args.soft_labels)
        model, record = fit_and_evaluate(regions, y, cfg, targets=targets,
                                         progress=lambda s, arm=arm: print(arm, s, flush=True))
        out = Path(args.out) / arm
        print(arm, json.dumps(record["metrics"]), record["seconds"], "s", flush=True)
        if arm == "original":
            save_trained(model, record, out)
            subprocess.run(["split", "-b", "15M", str(out / "model.keras"),
                            str(out / "model.keras.part-")], check=True)
            (out / "model.keras").unlink()
        else:
            out.mkdir(parents=True, exist_ok=True)
            (out / "record.json").write_text(json.dumps(record))
    print(f"total {time.monotonic() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()

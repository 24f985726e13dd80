"""How far the sagittal's cord course (core/cordpath.py) lies from the phantom's canal centre on
every axial slice, over many ``tfesi synth`` patients (development script; the numbers quoted
in docs/architecture.md, "Side from anatomy").

    python scripts/cord_course_phantoms.py [--seeds 10] [--per-seed 8] [--matrix 256]

Prints one line per patient (worst and median distance over its axial slices, mm, and the
left-right part of the worst) and a summary."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np


def distances(seed: int, index: int, matrix: int, folder: Path):
    """(distance, left-right part) per axial slice of one phantom, mm; None where the course
    does not cross a slice."""
    from tfesi_desktop.core.commands import open_study, sagittal_guide
    from tfesi_desktop.core.synth.cohort import draw_patient, sagittal_centre, write_study

    p = draw_patient(seed, index, matrix=matrix)
    row = write_study(p, folder)
    scan = open_study([folder]).scan
    stack = scan.find_stack(row["series_uid"])
    guide = sagittal_guide(scan, stack)
    truth = np.array(sagittal_centre(p))
    out = []
    for ref in stack.slices:
        g = ref.require_geometry()
        n = np.asarray(g.normal, float) / np.linalg.norm(g.normal)
        on_slice = truth + np.dot(np.asarray(g.position, float) - truth, n) * n
        at = guide.at(g) if guide is not None else None
        out.append(None if at is None else (float(np.linalg.norm(np.subtract(at, on_slice))),
                                            float(at[0] - on_slice[0])))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--per-seed", type=int, default=8)
    ap.add_argument("--matrix", type=int, default=256)
    args = ap.parse_args(argv)
    worst, missing = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            for index in range(args.per_seed):
                d = distances(seed, index, args.matrix, Path(tmp) / f"s{seed}_{index}")
                got = [x for x in d if x is not None]
                missing += len(d) - len(got)
                if not got:
                    print(f"seed {seed} patient {index}: no course")
                    worst.append(np.inf)
                    continue
                w = max(got)
                worst.append(w[0])
                print(f"seed {seed} patient {index}: worst {w[0]:.2f} mm (left-right {w[1]:+.2f}),"
                      f" median {np.median([x[0] for x in got]):.2f}, {len(d) - len(got)} slices "
                      "not crossed")
    w = np.array(worst)
    print(f"\n{len(w)} phantoms: worst {w.max():.2f} mm, median of the worst {np.median(w):.2f}, "
          f"over 2 mm {int((w > 2).sum())}, over 5 mm {int((w > 5).sum())}; slices not crossed "
          f"{missing}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

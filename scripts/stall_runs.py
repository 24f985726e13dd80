"""The window's stalls over many fresh processes (development script, docs/architecture.md,
"Measured facts"): runs ``python -m tfesi_desktop.gui.timing --detail`` N times for each source
tree given, interleaved (so a change of the machine's load hits them alike), each with a fresh
TFESI_HOME, and prints every run's worst stall per phase, the stalls over 45 ms (ms, seconds
from start, phase, GUI-thread CPU ms, process CPU ms) and a summary.

    python scripts/stall_runs.py N NAME=TREE [NAME=TREE ...] [--autogroup-nice -19]

TREE is a checkout's root (e.g. ``git archive e5f9735 | tar -x -C /tmp/old`` for the code before
a change, with its resources). ``--autogroup-nice`` (Linux, root) runs each probe in a session of
its own at that autogroup nice: on a machine other people's jobs load, the probe then gets the
CPU as on a physician's otherwise idle computer.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile


def run_once(tree: str, group_nice: str | None) -> dict:
    cmd = [sys.executable, "-m", "tfesi_desktop.gui.timing", "--detail"]
    if group_nice is not None:
        cmd = ["setsid", "sh", "-c", f"echo {group_nice} > /proc/self/autogroup && exec \"$@\"",
               "sh", *cmd]
    with tempfile.TemporaryDirectory(prefix="tfesi-stalls-") as home:
        env = dict(os.environ, PYTHONPATH=tree, TFESI_HOME=home,
                   QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"))
        r = subprocess.run(cmd, cwd=tree, capture_output=True, text=True, env=env)
    if r.returncode:
        raise SystemExit(f"{tree}: {r.stderr.strip()[-800:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("n", type=int)
    p.add_argument("trees", nargs="+", help="NAME=TREE")
    p.add_argument("--autogroup-nice")
    a = p.parse_args(argv)
    trees = [t.split("=", 1) for t in a.trees]
    runs: dict[str, list[dict]] = {name: [] for name, _ in trees}
    for i in range(a.n):
        for name, tree in trees:
            o = run_once(tree, a.autogroup_nice)
            runs[name].append(o)
            big = [s for s in o.get("stalls_over_30ms", []) if s[0] > 45]
            print(f"{name:8s} run {i:2d}: open+predict {o['gui_longest_stall_open_predict_ms']:3d}"
                  f" scroll {o['gui_scroll_longest_stall_ms']:3d} shown {o['window_shown_s']:.2f}"
                  f" s click {o['prediction_shown_after_click_ms']:5.1f} ms  >45: {big}",
                  flush=True)
    for name, rs in runs.items():
        def col(k, rs=rs):
            return [r[k] for r in rs]
        op, sc = col("gui_longest_stall_open_predict_ms"), col("gui_scroll_longest_stall_ms")
        print(f"{name}: n={len(rs)}; open+predict {sorted(op)} median {statistics.median(op)}, "
              f"{sum(x > 50 for x in op)} over 50 ms; scroll median {statistics.median(sc)} "
              f"max {max(sc)}, {sum(x > 50 for x in sc)} over 50 ms; window shown median "
              f"{statistics.median(col('window_shown_s')):.2f} s; click to result median "
              f"{statistics.median(col('prediction_shown_after_click_ms')):.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())

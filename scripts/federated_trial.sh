#!/usr/bin/env bash
# Federated vs each site alone vs all data pooled, on three shifted synthetic sites (issue 24).
# Every route starts from the shipped demonstration network (the small-cohort route the README
# advises) and uses the compact recipe's 30 epochs: alone and pooled with `tfesi train`, the
# federated run as R rounds x E local epochs of FedAvg (R*E = 30). All are scored by
# `tfesi evaluate --site` on each site's own test patients (fresh seeds no one trained on).
#   scripts/federated_trial.sh OUT [TRAIN_PER_SITE] [TEST_PER_SITE]
# Synthetic data and bundles go under OUT (keep it out of git).
set -euo pipefail
OUT=${1:?output folder}; N=${2:-150}; T=${3:-200}
R=${ROUNDS:-10}; E=${LOCAL_EPOCHS:-3}
TFESI=${TFESI:-python -m tfesi_desktop.cli}
BUNDLE=${BUNDLE:-resources/models/demo-synthetic}
SITES=(fatsat hospital-b highfield)
mkdir -p "$OUT"
i=0
for s in "${SITES[@]}"; do
  i=$((i + 1))
  [ -f "$OUT/train-$s/manifest.csv" ] || $TFESI synth "$OUT/train-$s" --patients "$N" \
      --seed $((5100 + i)) --site "$s" --storage plain --force >/dev/null
  [ -f "$OUT/test-$s/manifest.csv" ] || $TFESI synth "$OUT/test-$s" --patients "$T" \
      --seed $((5200 + i)) --site "$s" --storage plain --force >/dev/null
done
# pooled manifests (every site's training patients; every site's test patients), paths absolute
python - "$OUT" "${SITES[@]}" <<'PY'
import csv, sys
from pathlib import Path
out, sites = Path(sys.argv[1]).resolve(), sys.argv[2:]
for part, folder in (("train", "pooled"), ("test", "pooled-test")):
    rows = []
    for s in sites:
        with open(out / f"{part}-{s}" / "manifest.csv", newline="") as f:
            for r in csv.DictReader(f):
                r["study_path"] = str(out / f"{part}-{s}" / r["study_path"])
                rows.append(r)
    (out / folder).mkdir(exist_ok=True)
    with open(out / folder / "manifest.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
PY
INIT=(--variant compact --init-from "$BUNDLE/model.keras" --seed 7 --force)
for s in "${SITES[@]}"; do
  [ -f "$OUT/alone-$s/card.json" ] || /usr/bin/time -f "alone-$s %e s" \
      $TFESI train "$OUT/train-$s/manifest.csv" --out "$OUT/alone-$s" "${INIT[@]}" >/dev/null
done
[ -f "$OUT/pooled-model/card.json" ] || /usr/bin/time -f "pooled %e s" \
    $TFESI train "$OUT/pooled/manifest.csv" --out "$OUT/pooled-model" "${INIT[@]}" >/dev/null
if [ ! -f "$OUT/federated/card.json" ]; then
  M=(); for s in "${SITES[@]}"; do M+=(--manifest "$OUT/train-$s/manifest.csv" --site-name "$s"); done
  /usr/bin/time -f "federated %e s" $TFESI federate local "${M[@]}" --out "$OUT/federated" \
      --rounds "$R" --local-epochs "$E" --init-from "$BUNDLE" --seed 7 --force
fi
EV=(); for s in "${SITES[@]}"; do EV+=(--site "$s=$OUT/test-$s/manifest.csv"); done
EV+=(--site "all=$OUT/pooled-test/manifest.csv")
MODELS=(shipped alone-fatsat alone-hospital-b alone-highfield pooled-model federated)
for m in "${MODELS[@]}"; do
  b="$OUT/$m"; [ "$m" = shipped ] && b=$BUNDLE
  [ -f "$OUT/eval-$m.json" ] || $TFESI evaluate --model "$b" "${EV[@]}" --out "$OUT/eval-$m" \
      --json > "$OUT/eval-$m.json"
done
python - "$OUT" "${MODELS[@]}" <<'PY'
import json, sys
from pathlib import Path
out, models = Path(sys.argv[1]), sys.argv[2:]
print("AUC (95 % CI) / calibration slope on each site's test patients")
table = {m: json.loads((out / f"eval-{m}.json").read_text()) for m in models}
first = table[models[0]]
rows = first["sites"] if "sites" in first else first
print(f"{'model':18s}" + "".join(f"{r['site']:>28s}" for r in rows))
for m in models:
    d = table[m]
    cells = d["sites"] if "sites" in d else d
    print(f"{m:18s}" + "".join(
        f"{c['auc']:.3f} ({c['auc_ci95'][0]:.2f}-{c['auc_ci95'][1]:.2f}) / {c['slope']:.2f}"
        .rjust(28) for c in cells))
PY

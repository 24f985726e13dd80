"""A bounded, seeded fuzz run over the readers (scan, decoding, tfesi info --json, model cards):
every mutated input is read or gives one of our clear errors, never anything else.
Longer campaigns: scripts/fuzz.py."""

import importlib.util
import time
from collections import Counter

import pytest

from tests.conftest import REPO

CASES = 400
SECONDS = 45  # the run stops here even if fewer cases were tried (a slow machine)


def _fuzz():
    spec = importlib.util.spec_from_file_location("tfesi_fuzz", REPO / "scripts" / "fuzz.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore")  # pydicom warns about damaged files on purpose
def test_seeded_fuzz_run_gives_read_or_clear_error_only():
    fuzz = _fuzz()
    counts, kinds, failures = Counter(), Counter(), []

    def report(i, kind, outcome, detail):
        counts[outcome] += 1
        kinds[kind] += 1
        if outcome == "anything else":
            failures.append(f"case 7:{i} ({kind}): {detail}")

    fuzz.run_cases(7, 0, CASES, time.monotonic() + SECONDS, report)
    print(dict(counts), dict(kinds))
    assert not failures, "\n".join(failures[:5]) + (
        "\nreplay one with: python scripts/fuzz.py --replay 7:<index> --keep DIR")
    assert sum(counts.values()) >= min(CASES, 100)
    assert counts["read"] and counts["clear error"]
    assert set(kinds) == {"file", "folder", "zip", "dicomdir", "card"}

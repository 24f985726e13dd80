"""A site-check's verdict that stays with every prediction (issue 24, item 2): where
``tfesi site-check --record`` found this site's images differ from a model's training images,
every prediction of that model says so, in the window, the report and the CLI, until
``tfesi site-check --validated`` records that the model was validated here (docs/architecture.md
invariant 8: an input unlike the training images is flagged, not scored with false confidence).

The verdicts are kept in the private data folder (:func:`.paths.data_dir`), keyed by the model's
SHA-256, so another model (a fine-tuned one, say) is not flagged by a check it never had. The
note travels as the prediction's ``source_note`` (:mod:`.source`), which the panel, the report
and ``tfesi predict`` already print. Qt-free.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

from .fileio import write_atomically
from .paths import data_dir

FILE = "site-checks.json"


def record_path() -> Path:
    return data_dir() / FILE


def _load() -> dict:
    try:
        data = json.loads(record_path().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _save(data: dict) -> None:
    write_atomically(record_path(), json.dumps(data, indent=1).encode(), private=True)


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d")


def record_check(bundle, result: dict) -> dict:
    """Store a site-check's verdict (:func:`.site_check.site_check`) for this model. Counts and
    the verdict only: no patient identifiers."""
    d = result["distribution"]
    entry = {"model": f"{bundle.name} {bundle.version}", "date": _now(),
             "patients": result["patients"], "flagged_share": d["flagged_share"],
             "differs": bool(d["differs"] or result["acquisition"]["outside"]),
             "outside": list(result["acquisition"]["outside"]), "validated": None}
    data = _load()
    data[bundle.sha256] = entry
    _save(data)
    return entry


def mark_validated(bundle) -> dict | None:
    """Record that this model was validated on local outcomes: its predictions no longer carry
    the site note. None when no check of this model was recorded."""
    data = _load()
    entry = data.get(bundle.sha256)
    if entry is None:
        return None
    entry["validated"] = _now()
    _save(data)
    return entry


def site_note(bundle) -> str | None:
    """The sentence every prediction of this model carries at this site, or None."""
    entry = _load().get(bundle.sha256)
    if not entry or not entry.get("differs") or entry.get("validated"):
        return None
    outside = entry.get("outside") or []
    why = (f"{entry['flagged_share']:.0%} of {entry['patients']} patients flagged"
           + (f"; outside the training range: {', '.join(outside)}" if outside else ""))
    return (f"The site check of {entry['date']} found this site's images differ from this "
            f"model's training images ({why}): validate the model on local patients before "
            "use (tfesi site-check --validated once done).")


def with_site_note(note: str | None, bundle) -> str | None:
    """A prediction's source note with the site note added."""
    extra = site_note(bundle)
    return " ".join(n for n in (note, extra) if n) or None

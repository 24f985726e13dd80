"""What the user marked on a study (series, slice, ROI, side, level), saved as they work and
restored when the study is opened again. One small JSON file per study, named by a hash of the
Study Instance UID (no patient data in file names), written atomically."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from .paths import data_dir


@dataclass
class StudyState:
    study_uid: str
    series_key: str | None = None
    slice_key: str | None = None  # SOP Instance UID (uid:frame for multi-frame)
    roi: tuple[int, int, int, int] | None = None
    side: str | None = None
    level: str | None = None


def _file(study_uid: str) -> Path:
    h = hashlib.sha256(study_uid.encode()).hexdigest()[:32]
    return data_dir() / "studies" / f"{h}.json"


def load_state(study_uid: str) -> StudyState | None:
    f = _file(study_uid)
    try:
        d = json.loads(f.read_text())
        if d.get("study_uid") != study_uid:
            return None
        roi = d.get("roi")
        return StudyState(study_uid, d.get("series_key"), d.get("slice_key"),
                          tuple(int(v) for v in roi) if roi else None, d.get("side"),
                          d.get("level"))
    except (OSError, ValueError, TypeError):
        return None  # nothing saved, or a damaged file: start afresh


def save_state(state: StudyState) -> None:
    f = _file(state.study_uid)
    f.parent.mkdir(parents=True, exist_ok=True)
    tmp = f.with_suffix(".partial")
    tmp.write_text(json.dumps(asdict(state)))
    tmp.replace(f)

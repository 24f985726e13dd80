"""The private ledger: one SQLite file in the user's private data folder (0700 folder, 0600 file)
that keeps what must stay the same across runs and processes: the original-to-anonymized UID map,
the patients' pseudonyms (:mod:`.deid`) and how many times each result series was exported
(:mod:`.results_dicom`). It links anonymized results back to patients: never share it.

SQLite serialises writers across processes (``BEGIN IMMEDIATE`` with a busy timeout), so two
processes anonymizing at once lose no mapping; a lock in a thread would not (invariant 5).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from pathlib import Path

from .errors import TfesiError
from .fileio import private_dir
from .paths import data_dir

LEDGER = "ledger.sqlite"
_OLD_JSON = "uid-map.json"  # the map of earlier versions, imported once
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS uids (original TEXT PRIMARY KEY, replacement TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS patients (patient TEXT PRIMARY KEY, pseudonym TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS exports (series TEXT PRIMARY KEY, count INTEGER NOT NULL)")


def ledger_path() -> Path:
    return data_dir() / "anonymization" / LEDGER


@contextlib.contextmanager
def transaction():
    """A write transaction on the ledger (created 0600 if missing); :class:`TfesiError` if it
    cannot be opened or is damaged, so that no new identity is made that breaks the link."""
    path = ledger_path()
    private_dir(path.parent)
    fresh = not path.exists()
    if fresh:  # created private before SQLite opens it (its journal copies the mode)
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    try:
        con = sqlite3.connect(path, timeout=60, isolation_level=None)
    except sqlite3.Error as e:
        raise TfesiError(f"The private anonymization ledger cannot be opened ({e}).", path) from e
    try:
        con.execute("BEGIN IMMEDIATE")
        for statement in _SCHEMA:
            con.execute(statement)
        if fresh:
            _import_old_map(con, path.parent / _OLD_JSON)
        yield con
        con.execute("COMMIT")
    except sqlite3.Error as e:
        with contextlib.suppress(sqlite3.Error):
            con.execute("ROLLBACK")
        raise TfesiError("The private anonymization ledger cannot be used, so no new identity "
                         "is made (that would break the link the clinic keeps). Repair or move "
                         f"the file ({e}).", path) from e
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            con.execute("ROLLBACK")
        raise
    finally:
        con.close()
    os.chmod(path, 0o600)


def _import_old_map(con, old: Path) -> None:
    try:
        uids = json.loads(old.read_text("utf-8"))["uids"]
    except (OSError, ValueError, KeyError, TypeError):
        return
    con.executemany("INSERT OR IGNORE INTO uids VALUES (?, ?)",
                    [(str(k), str(v)) for k, v in dict(uids).items()])


def lookup_or_insert(table: str, key: str, make) -> str:
    """The value kept for ``key`` in ``table`` (uids or patients), made by ``make()`` and
    recorded the first time; the same in every process."""
    column = {"uids": ("original", "replacement"), "patients": ("patient", "pseudonym")}[table]
    with transaction() as con:
        row = con.execute(f"SELECT {column[1]} FROM {table} WHERE {column[0]} = ?",
                          (key,)).fetchone()
        if row:
            return row[0]
        value = make()
        con.execute(f"INSERT INTO {table} VALUES (?, ?)", (key, value))
        return value


def next_count(series: str) -> int:
    """1 the first time ``series`` is exported, then 2, 3 ...: the instance number of a
    re-exported result, so that versions of one result stay in one series."""
    with transaction() as con:
        row = con.execute("SELECT count FROM exports WHERE series = ?", (series,)).fetchone()
        n = (row[0] if row else 0) + 1
        con.execute("INSERT OR REPLACE INTO exports VALUES (?, ?)", (series, n))
        return n

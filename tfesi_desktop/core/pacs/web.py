"""DICOMweb with dicomweb-client: QIDO-RS (search), WADO-RS (retrieve), STOW-RS (store), for a
PACS that offers it. Same results and errors as the DIMSE functions in :mod:`.dimse`."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import requests
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO

from ..errors import Cancelled
from .cache import Staging
from .dimse import (
    CONNECT_TIMEOUT,
    DIMSE_TIMEOUT,
    SERIES_KEYS,
    STUDY_KEYS,
    Cancel,
    Progress,
    Retrieved,
    _as_dict,
    parse_date_range,
)
from .nodes import PacsError, PacsNode


class _Session(requests.Session):
    """Every request bounded in time, like the DIMSE calls."""

    def request(self, *args, **kwargs):
        kwargs.setdefault("timeout", (CONNECT_TIMEOUT, DIMSE_TIMEOUT))
        return super().request(*args, **kwargs)


def _client(node: PacsNode):
    from dicomweb_client.api import DICOMwebClient

    if not node.url:
        raise PacsError(f"The PACS {node} has no DICOMweb URL.")
    return DICOMwebClient(node.url, session=_Session())


def _call(node: PacsNode, what: str, fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except requests.exceptions.ConnectTimeout as e:
        raise PacsError(f"No answer from the DICOMweb service {node.url} within "
                        f"{CONNECT_TIMEOUT:.0f} s when we {what}.") from e
    except requests.exceptions.ConnectionError as e:
        raise PacsError(f"Cannot reach the DICOMweb service {node.url} when we {what}: nothing "
                        "answers there (is the PACS running, and is the URL right?).") from e
    except requests.exceptions.Timeout as e:
        raise PacsError(f"The DICOMweb service {node.url} stopped answering when we "
                        f"{what}.") from e
    except requests.exceptions.HTTPError as e:
        code = e.response.status_code if e.response is not None else "?"
        hint = {401: "it wants credentials", 403: "it does not allow this",
                404: "nothing of that name is there"}.get(code, "")
        raise PacsError(f"The DICOMweb service {node.url} answered HTTP {code} when we {what}"
                        + (f" ({hint})" if hint else "") + ".") from e


def _from_json(item: dict) -> Dataset:
    return Dataset.from_json(item)


def find_studies(node: PacsNode, *, patient_id=None, patient_name=None, study_date=None,
                 modality=None, accession=None, study_uid=None, **_ignored) -> list[dict]:
    filters = {k: v for k, v in {
        "PatientID": patient_id, "PatientName": patient_name,
        "StudyDate": parse_date_range(study_date) if study_date else None,
        "ModalitiesInStudy": modality, "AccessionNumber": accession,
        "StudyInstanceUID": study_uid}.items() if v}
    client = _client(node)
    fields = [k for k in STUDY_KEYS if k not in filters]
    found = _call(node, "searched", client.search_for_studies, search_filters=filters,
                  fields=fields) or []
    rows = [_as_dict(_from_json(x), STUDY_KEYS) for x in found]
    rows.sort(key=lambda r: (r["study_date"] or "", r["study_time"] or ""), reverse=True)
    return rows


def find_series(node: PacsNode, study_uid: str, **_ignored) -> list[dict]:
    client = _client(node)
    found = _call(node, "searched", client.search_for_series, study_instance_uid=study_uid,
                  fields=list(SERIES_KEYS)) or []
    rows = [_as_dict(_from_json(x), SERIES_KEYS) for x in found]
    for r in rows:
        r["study_uid"] = r["study_uid"] or study_uid
    return sorted(rows, key=lambda r: (r["series_number"] is None, r["series_number"] or 0))


def _encoded(ds: Dataset) -> bytes:
    buf = DicomBytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def retrieve(node: PacsNode, study_uid: str, dest: str | Path, *, series_uid: str | None = None,
             progress: Progress = None, cancel: Cancel = None, **_ignored) -> Retrieved:
    """WADO-RS of a study or series into ``dest``, all or nothing (as :func:`.dimse.retrieve`)."""
    t0 = time.perf_counter()
    client = _client(node)
    if series_uid:
        total = sum(r["instances"] or 0 for r in find_series(node, study_uid)
                    if r["series_uid"] == series_uid)
        it = _call(node, "retrieved", client.iter_series, study_uid, series_uid)
    else:
        rows = find_studies(node, study_uid=study_uid)
        if not rows:
            raise PacsError(f"The study {study_uid} is not on the DICOMweb service {node.url}.")
        total = rows[0]["instances"] or 0
        it = _call(node, "retrieved", client.iter_study, study_uid)
    with Staging(dest) as staging:
        done = 0
        while True:
            if cancel and cancel():
                raise Cancelled("Retrieval cancelled; nothing was imported.")
            ds = _call(node, "retrieved", next, it, None)
            if ds is None:
                break
            staging.write(ds.SeriesInstanceUID, ds.SOPInstanceUID, _encoded(ds))
            done += 1
            if progress:
                progress(done, max(total, done))
        if done == 0:
            raise PacsError(f"The DICOMweb service {node.url} sent no images for study "
                            f"{study_uid}; nothing was imported.")
        staging.commit()
    return Retrieved(Path(dest), done, time.perf_counter() - t0, study_uid)


def store(files: Sequence[str | Path], node: PacsNode, *, progress: Progress = None,
          cancel: Cancel = None, **_ignored) -> int:
    """STOW-RS of the files, in one request."""
    datasets = [dcmread(f) for f in files]
    if cancel and cancel():
        raise Cancelled()
    _call(node, "sent files", _client(node).store_instances, datasets)
    if progress:
        progress(len(files), len(files))
    return len(files)

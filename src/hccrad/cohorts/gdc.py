"""The GDC API: a project's STAR counts files and clinical cases, their sample sheet, downloads.

Files are found by a filters query on /files (md5 and size from the server) and downloaded by
id with hccrad.cohorts.download; /cases gives the clinical table (survival, sex, age, stage).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import requests

from hccrad.cohorts.download import (
    DownloadError,
    FileJob,
    RetryPolicy,
    VerifiedFile,
    fetch_all,
    safe_target,
    small_request,
    unexpected_body,
)
from hccrad.cohorts.rnaseq_samples import SAMPLE_SHEET_COLUMNS

GDC_STAR_FILTER = {
    "data_category": "Transcriptome Profiling",
    "data_type": "Gene Expression Quantification",
    "analysis.workflow_type": "STAR - Counts",
}
GDC_FILE_FIELDS = (
    "file_id",
    "file_name",
    "md5sum",
    "file_size",
    "data_category",
    "data_type",
    "cases.submitter_id",
    "cases.project.project_id",
    "cases.samples.submitter_id",
    "cases.samples.sample_type",
)
GDC_CASE_FIELDS = (
    "submitter_id",
    "demographic.gender",
    "demographic.vital_status",
    "demographic.days_to_death",
    "diagnoses.age_at_diagnosis",
    "diagnoses.days_to_last_follow_up",
    "diagnoses.ajcc_pathologic_stage",
)
DAYS_PER_MONTH = 365.25 / 12


def gdc_filters(
    project: str, extra: Mapping[str, str], project_field: str = "cases.project.project_id"
) -> dict[str, Any]:
    """A GDC filters object: the project and each ``field = value`` of ``extra``.

    ``project_field`` is ``cases.project.project_id`` on /files, ``project.project_id`` on /cases.
    """
    clauses = [{"op": "in", "content": {"field": project_field, "value": [project]}}]
    clauses += [
        {"op": "in", "content": {"field": field, "value": [value]}}
        for field, value in extra.items()
    ]
    return {"op": "and", "content": clauses}


def gdc_hits(
    base_url: str,
    endpoint: str,
    filters: Mapping[str, Any],
    fields: Sequence[str],
    *,
    session: requests.Session | None = None,
    page_size: int = 500,
    policy: RetryPolicy = RetryPolicy(),
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[dict[str, Any]]:
    """Every hit of a GDC search endpoint (files, cases), page by page."""
    session = session or requests.Session()
    start, pages = 0, 1
    page = 0
    while page < pages:
        body = {
            "filters": filters,
            "fields": ",".join(fields),
            "format": "JSON",
            "size": page_size,
            "from": start,
        }
        hits, pagination = _post_json(
            session, f"{base_url.rstrip('/')}/{endpoint}", body, policy, sleep
        )
        yield from hits
        pages = int(pagination["pages"])
        page += 1
        start += int(pagination["count"])
        if not hits:
            break


def _post_json(
    session: requests.Session,
    url: str,
    body: Mapping[str, Any],
    policy: RetryPolicy,
    sleep: Callable[[float], None],
) -> tuple[list[dict[str, Any]], Mapping[str, Any]]:
    """POST a GDC query (retries on busy statuses): the hits and the pagination of the page."""
    response = small_request(
        lambda: session.post(url, json=body, timeout=policy.timeout_s),
        url,
        f"check download.gdc_base_url and the filters in the config (query "
        f"{json.dumps(body)[:300]})",
        policy,
        sleep,
    )
    try:
        data = response.json()["data"]
        return list(data["hits"]), data["pagination"]
    except (ValueError, KeyError, TypeError) as error:  # requests' JSONDecodeError: ValueError
        raise DownloadError(
            unexpected_body(url, response, "GDC JSON (data.hits)", "gdc_base_url")
        ) from error


def gdc_sample_sheet(hits: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The GDC-style sample sheet (as the portal writes it) of /files hits."""
    rows = []
    for hit in hits:
        cases = hit.get("cases") or []
        if len(cases) != 1 or len(cases[0].get("samples") or []) != 1:
            raise DownloadError(
                f"GDC file {hit['file_id']} ({hit['file_name']}) is pooled over "
                f"{len(cases)} case(s); a STAR counts file must belong to one sample"
            )
        case, sample = cases[0], cases[0]["samples"][0]
        safe_target(".", hit["file_name"])  # refuse a traversal name before it reaches a path
        rows.append(
            {
                "File ID": hit["file_id"],
                "File Name": hit["file_name"],
                "Data Category": hit["data_category"],
                "Data Type": hit["data_type"],
                "Project ID": case["project"]["project_id"],
                "Case ID": case["submitter_id"],
                "Sample ID": sample["submitter_id"],
                "Sample Type": sample["sample_type"],
            }
        )
    return pd.DataFrame(rows, columns=list(SAMPLE_SHEET_COLUMNS))


def gdc_download_files(
    base_url: str,
    hits: Sequence[Mapping[str, Any]],
    folder: Path,
    *,
    session: requests.Session | None = None,
    policy: RetryPolicy = RetryPolicy(),
    sleep: Callable[[float], None] = time.sleep,
) -> list[VerifiedFile]:
    """Download each hit by file id to ``folder/<file id>/<file name>`` (the gdc-client layout).

    A file without ``md5sum`` is accepted only after its content check (STAR counts parsed).
    """
    jobs = [
        FileJob(
            f"{base_url.rstrip('/')}/data/{hit['file_id']}",
            safe_target(folder, f"{hit['file_id']}/{hit['file_name']}"),
            hit.get("md5sum"),
            hit.get("file_size"),
        )
        for hit in hits
    ]
    return fetch_all(jobs, Path(folder), session=session, policy=policy, sleep=sleep)


def _first(values: Any) -> Mapping[str, Any]:
    """The first record of a GDC list field (diagnoses), or an empty mapping."""
    if isinstance(values, list):
        return values[0] if values else {}
    return values or {}


def gdc_clinical_table(cases: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Survival, sex, age and stage per case of /cases hits (times in months)."""
    rows = []
    for case in cases:
        demographic, diagnosis = _first(case.get("demographic")), _first(case.get("diagnoses"))
        dead = str(demographic.get("vital_status", "")).lower() == "dead"
        days = demographic.get("days_to_death") if dead else diagnosis.get("days_to_last_follow_up")
        age_days = diagnosis.get("age_at_diagnosis")
        sex = {"male": "M", "female": "F"}.get(str(demographic.get("gender", "")).lower())
        rows.append(
            {
                "patient_id": case["submitter_id"],
                "age": age_days / 365.25 if age_days is not None else None,
                "sex": sex,
                "stage": diagnosis.get("ajcc_pathologic_stage"),
                "os_time": days / DAYS_PER_MONTH if days else None,
                "os_event": int(dead) if days else None,
            }
        )
    return pd.DataFrame(rows).sort_values("patient_id", ignore_index=True)

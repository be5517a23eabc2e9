"""Downloads over HTTP: resume, retry with back-off, size/md5 checks, no writes outside a folder.

The same ``fetch`` serves the GDC (RNA-seq files by id, md5 from the /files endpoint) and the
Imaging Data Commons buckets (DICOM instances listed by the bucket's S3 listing, md5 = ETag).
Every base URL comes from the config, so the tests point it at a local recorded server.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd
import requests

from hccrad.expression import SAMPLE_SHEET_COLUMNS

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
# HTTP statuses worth another try: the server or a proxy was busy, not the request wrong.
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
S3_NAMESPACE = "{http://s3.amazonaws.com/doc/2006-03-01/}"
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


class DownloadError(RuntimeError):
    """A download that cannot succeed; the message names the URL, the file and the fix."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a download is retried."""

    retries: int = 5
    backoff_s: float = 2.0
    timeout_s: float = 60.0

    def wait(self, attempt: int, sleep: Callable[[float], None] = time.sleep) -> None:
        """Sleep before retry ``attempt`` (1, 2, ...): exponential back-off."""
        sleep(self.backoff_s * 2 ** (attempt - 1))


def safe_target(folder: str | Path, name: str) -> Path:
    """``folder / name``, refusing names that would land outside ``folder`` (path traversal)."""
    posix = PurePosixPath(name.replace("\\", "/"))
    if not name or posix.is_absolute() or ".." in posix.parts or ":" in name:
        raise DownloadError(
            f"refused file name {name!r} from the server: it would be written outside "
            f"{folder}; the response is corrupt or malicious, so nothing was written"
        )
    root = Path(folder).resolve()
    target = (root / Path(*posix.parts)).resolve()
    if root not in target.parents:
        raise DownloadError(f"refused file name {name!r}: it resolves outside {folder}")
    return target


def file_md5(path: Path) -> str:
    """Hex md5 of a file, read in chunks."""
    digest = hashlib.md5()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _verified(path: Path, md5: str | None, size: int | None) -> str | None:
    """None when ``path`` has the expected size and md5, else what differs."""
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        return f"size {actual_size} B, expected {size} B"
    if md5 is not None and (actual := file_md5(path)) != md5.lower():
        return f"md5 {actual}, expected {md5}"
    return None


def _transfer(
    session: requests.Session, url: str, part: Path, policy: RetryPolicy
) -> requests.Response:
    """Stream ``url`` into ``part``, resuming from its length with a Range request."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    with session.get(url, headers=headers, stream=True, timeout=policy.timeout_s) as response:
        if response.status_code == 416:  # the part already holds every byte
            return response
        if response.status_code >= 400:
            return response
        # 206: the server resumed; 200: it sent the whole file again, so start over.
        mode = "ab" if response.status_code == 206 and offset else "wb"
        with part.open(mode) as handle:
            for chunk in response.iter_content(CHUNK_BYTES):
                handle.write(chunk)
        return response


def fetch(
    url: str,
    target: Path,
    *,
    md5: str | None = None,
    size: int | None = None,
    session: requests.Session | None = None,
    policy: RetryPolicy = RetryPolicy(),
    sleep: Callable[[float], None] = time.sleep,
) -> Path:
    """Download ``url`` to ``target`` with resume, retries, back-off and size/md5 checks.

    Hand-written rather than urllib3's Retry: a checksum mismatch must also trigger a fresh
    download, and a broken transfer must resume from the bytes already on disk.
    """
    session = session or requests.Session()
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and _verified(target, md5, size) is None:
        return target
    part = target.with_name(target.name + ".part")
    problem = "no attempt"
    for attempt in range(policy.retries + 1):
        if attempt:
            log.warning("%s: attempt %d failed (%s); retrying", url, attempt, problem)
            policy.wait(attempt, sleep)
        try:
            response = _transfer(session, url, part, policy)
        except (
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,
        ) as error:
            problem = f"{type(error).__name__}: {error}"
            continue
        status = response.status_code
        if status >= 400 and status != 416:
            problem = f"HTTP {status}"
            if status in RETRY_STATUSES:
                continue
            raise DownloadError(
                f"{url}: HTTP {status} ({response.reason}) for {target.name}. "
                + (
                    "The file does not exist on the server: check the id in the manifest "
                    "and the base URL in the config."
                    if status == 404
                    else "The server refused the request; check the URL and access rights."
                )
            )
        if not part.exists():
            part.touch()
        if size is not None and part.stat().st_size < size:
            problem = f"transfer stopped at {part.stat().st_size} of {size} B"
            continue  # the next attempt resumes from here
        mismatch = _verified(part, md5, size)
        if mismatch is None:
            part.replace(target)
            return target
        problem = f"downloaded file has {mismatch}"
        part.unlink()  # a corrupt file cannot be resumed: fetch it whole again
    raise DownloadError(
        f"{url}: giving up on {target} after {policy.retries + 1} attempts; last problem: "
        f"{problem}. Check the network and the server, then rerun (finished files are kept "
        f"and a partial file resumes)."
    )


# --------------------------------------------------------------------------- GDC


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
        data = _post_json(session, f"{base_url.rstrip('/')}/{endpoint}", body, policy, sleep)
        hits, pagination = data["data"]["hits"], data["data"]["pagination"]
        yield from hits
        pages = int(pagination["pages"])
        page += 1
        start += int(pagination["count"])
        if not hits:
            break


def _small_request(
    send: Callable[[], requests.Response],
    url: str,
    fix: str,
    policy: RetryPolicy,
    sleep: Callable[[float], None],
) -> requests.Response:
    """Send a small request with retries on busy statuses; DownloadError naming `fix` otherwise."""
    problem = ""
    for attempt in range(policy.retries + 1):
        if attempt:
            policy.wait(attempt, sleep)
        try:
            response = send()
        except (requests.ConnectionError, requests.Timeout) as error:
            problem = str(error)
            continue
        if response.status_code in RETRY_STATUSES:
            problem = f"HTTP {response.status_code}"
            continue
        if response.status_code >= 400:
            raise DownloadError(f"{url}: HTTP {response.status_code}; {fix}")
        return response
    raise DownloadError(f"{url}: giving up after {policy.retries + 1} attempts ({problem})")


def _post_json(
    session: requests.Session,
    url: str,
    body: Mapping[str, Any],
    policy: RetryPolicy,
    sleep: Callable[[float], None],
) -> dict[str, Any]:
    """POST a JSON query with retries on busy statuses; DownloadError otherwise."""
    return _small_request(
        lambda: session.post(url, json=body, timeout=policy.timeout_s),
        url,
        f"query {json.dumps(body)[:300]}: check the base URL and the filters in the config",
        policy,
        sleep,
    ).json()


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
) -> list[Path]:
    """Download each hit by file id to ``folder/<file id>/<file name>`` (the gdc-client layout)."""
    session = session or requests.Session()
    paths = []
    for hit in hits:
        target = safe_target(folder, f"{hit['file_id']}/{hit['file_name']}")
        paths.append(
            fetch(
                f"{base_url.rstrip('/')}/data/{hit['file_id']}",
                target,
                md5=hit.get("md5sum"),
                size=hit.get("file_size"),
                session=session,
                policy=policy,
                sleep=sleep,
            )
        )
    return paths


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


# --------------------------------------------------------------------------- IDC buckets


@dataclass(frozen=True)
class BucketObject:
    """One object of an S3 bucket listing."""

    key: str
    size: int
    md5: str | None


def parse_s3_listing(xml_text: str) -> tuple[list[BucketObject], str | None]:
    """Objects of an S3 ListObjectsV2 page and the continuation token (None: last page)."""
    root = ET.fromstring(xml_text)
    objects = []
    for item in root.iter(f"{S3_NAMESPACE}Contents"):
        etag = (item.findtext(f"{S3_NAMESPACE}ETag") or "").strip('"')
        objects.append(
            BucketObject(
                key=item.findtext(f"{S3_NAMESPACE}Key") or "",
                size=int(item.findtext(f"{S3_NAMESPACE}Size") or 0),
                # A multipart upload's ETag ("...-N") is not the md5 of the object.
                md5=etag if etag and "-" not in etag else None,
            )
        )
    truncated = root.findtext(f"{S3_NAMESPACE}IsTruncated") == "true"
    return objects, root.findtext(f"{S3_NAMESPACE}NextContinuationToken") if truncated else None


def list_series(
    base_url: str,
    series_uuid: str,
    *,
    session: requests.Session | None = None,
    policy: RetryPolicy = RetryPolicy(),
    sleep: Callable[[float], None] = time.sleep,
) -> list[BucketObject]:
    """Every object under ``<series uuid>/`` of the IDC bucket (public S3 listing)."""
    session = session or requests.Session()
    objects: list[BucketObject] = []
    token: str | None = None
    while True:
        params = {"list-type": "2", "prefix": f"{series_uuid}/"}
        if token:
            params["continuation-token"] = token
        text = _get_text(session, base_url.rstrip("/") + "/", params, policy, sleep)
        page, token = parse_s3_listing(text)
        objects += page
        if token is None:
            return objects


def _get_text(
    session: requests.Session,
    url: str,
    params: Mapping[str, str],
    policy: RetryPolicy,
    sleep: Callable[[float], None],
) -> str:
    """GET a small text resource with retries on busy statuses; DownloadError otherwise."""
    return _small_request(
        lambda: session.get(url, params=params, timeout=policy.timeout_s),
        url,
        f"parameters {dict(params)}: check the base URL",
        policy,
        sleep,
    ).text


def download_series(
    base_url: str,
    series_uuid: str,
    folder: Path,
    expected_instances: int,
    *,
    session: requests.Session | None = None,
    policy: RetryPolicy = RetryPolicy(),
    sleep: Callable[[float], None] = time.sleep,
) -> list[Path]:
    """Every DICOM instance of one IDC series into ``folder``, checked against the index count."""
    session = session or requests.Session()
    objects = list_series(base_url, series_uuid, session=session, policy=policy, sleep=sleep)
    if len(objects) != expected_instances:
        raise DownloadError(
            f"IDC series {series_uuid}: the bucket lists {len(objects)} instance(s), the index "
            f"{expected_instances}; the index and the bucket disagree (a newer IDC release?). "
            "Update the shipped index (resources/idc) or the base URL."
        )
    paths = []
    for obj in objects:
        name = obj.key.removeprefix(f"{series_uuid}/")
        target = safe_target(folder, name)
        paths.append(
            fetch(
                f"{base_url.rstrip('/')}/{obj.key}",
                target,
                md5=obj.md5,
                size=obj.size,
                session=session,
                policy=policy,
                sleep=sleep,
            )
        )
    return paths


def download_patient(
    base_url: str,
    series: pd.DataFrame,
    folder: Path,
    policy: RetryPolicy = RetryPolicy(),
    *,
    session: requests.Session | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Path]:
    """Every manifest series of one patient into ``folder/<role>/`` (phase or segmentation)."""
    session = session or requests.Session()
    paths: list[Path] = []
    for row in series.itertuples(index=False):
        paths += download_series(
            base_url,
            str(row.crdc_series_uuid),
            safe_target(folder, str(row.role)),
            int(row.instance_count),
            session=session,
            policy=policy,
            sleep=sleep,
        )
    return paths

"""The IDC buckets: list a DICOM series (the bucket's public S3 listing) and download it.

A series' instance count must match the shipped index (hccrad.cohorts.idc); each instance is
fetched with hccrad.cohorts.download (md5 = ETag, else checked by pydicom).
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

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

S3_NAMESPACE = "{http://s3.amazonaws.com/doc/2006-03-01/}"


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
    url = base_url.rstrip("/") + "/"
    objects: list[BucketObject] = []
    token: str | None = None
    while True:
        params = {"list-type": "2", "prefix": f"{series_uuid}/"}
        if token:
            params["continuation-token"] = token
        response = small_request(
            lambda params=params: session.get(url, params=params, timeout=policy.timeout_s),
            url,
            f"check download.idc_base_url in the config (parameters {params})",
            policy,
            sleep,
        )
        try:
            if ET.fromstring(response.text).tag != f"{S3_NAMESPACE}ListBucketResult":
                raise ET.ParseError("not an S3 ListBucketResult")
            page, token = parse_s3_listing(response.text)
        except ET.ParseError as error:
            raise DownloadError(
                unexpected_body(url, response, "an S3 bucket listing (XML)", "idc_base_url")
            ) from error
        objects += page
        if token is None:
            return objects


def _series_jobs(
    base_url: str,
    series_uuid: str,
    folder: Path,
    expected_instances: int,
    *,
    session: requests.Session,
    policy: RetryPolicy,
    sleep: Callable[[float], None],
) -> list[FileJob]:
    """The files of one IDC series, checked against the index's instance count."""
    objects = list_series(base_url, series_uuid, session=session, policy=policy, sleep=sleep)
    if len(objects) != expected_instances:
        raise DownloadError(
            f"IDC series {series_uuid}: the bucket lists {len(objects)} instance(s), the index "
            f"{expected_instances}; the index and the bucket disagree (a newer IDC release?). "
            "Fix: update the shipped index (resources/idc) or the base URL."
        )
    return [
        FileJob(
            f"{base_url.rstrip('/')}/{obj.key}",
            safe_target(folder, obj.key.removeprefix(f"{series_uuid}/")),
            obj.md5,
            obj.size,
        )
        for obj in objects
    ]


def download_series(
    base_url: str,
    series_uuid: str,
    folder: Path,
    expected_instances: int,
    *,
    session: requests.Session | None = None,
    policy: RetryPolicy = RetryPolicy(),
    sleep: Callable[[float], None] = time.sleep,
) -> list[VerifiedFile]:
    """Every DICOM instance of one IDC series into ``folder``, checked against the index count.

    An instance without an md5 (multipart ETag) is accepted only after pydicom reads it.
    """
    session = session or requests.Session()
    jobs = _series_jobs(
        base_url,
        series_uuid,
        folder,
        expected_instances,
        session=session,
        policy=policy,
        sleep=sleep,
    )
    return fetch_all(jobs, Path(folder), session=session, policy=policy, sleep=sleep)


def download_patient(
    base_url: str,
    series: pd.DataFrame,
    folder: Path,
    policy: RetryPolicy = RetryPolicy(),
    *,
    session: requests.Session | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[VerifiedFile]:
    """Every manifest series of one patient into ``folder/<role>/`` (phase or segmentation).

    Every series is listed first; then every file is fetched, and when some fail the verified
    ones stay in ``folder`` for the rerun (see :func:`fetch_all`).
    """
    session = session or requests.Session()
    jobs: list[FileJob] = []
    for row in series.itertuples(index=False):
        jobs += _series_jobs(
            base_url,
            str(row.crdc_series_uuid),
            safe_target(folder, str(row.role)),
            int(row.instance_count),
            session=session,
            policy=policy,
            sleep=sleep,
        )
    return fetch_all(jobs, Path(folder), session=session, policy=policy, sleep=sleep)

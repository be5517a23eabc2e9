"""Downloads against recorded, real-format responses served locally (no network).

The responses are shaped like the real ones: GDC /files and /cases JSON pages (the documented
layout of api_samples/ in ../shared/realdata), an S3 ListObjectsV2 page of the IDC bucket.
Ids use the TCGA tissue-source-site code Z9, which TCGA never issued: no real participant.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pandas as pd
import pydicom
import pytest
from pydicom.data import get_testdata_file
from werkzeug import Request, Response

from hccrad.cohorts.download import DownloadError, RetryPolicy, fetch_verified, safe_target
from hccrad.cohorts.gdc import (
    gdc_clinical_table,
    gdc_download_files,
    gdc_filters,
    gdc_hits,
    gdc_sample_sheet,
)
from hccrad.cohorts.idc_download import download_series, parse_s3_listing
from hccrad.cohorts.rnaseq_samples import read_sample_sheet, read_star_files

SHARED = Path(__file__).resolve().parents[2] / "shared" / "realdata"
FAST = RetryPolicy(retries=3, backoff_s=0.0, timeout_s=5.0)
PAYLOAD = bytes(range(256)) * 40  # 10 kB


def md5(data: bytes) -> str:
    """Hex md5 of bytes."""
    return hashlib.md5(data).hexdigest()


def test_plain_download_verifies_size_and_md5(httpserver, tmp_path):
    httpserver.expect_request("/data/f1").respond_with_data(PAYLOAD)
    target = fetch_verified(
        httpserver.url_for("/data/f1"),
        tmp_path / "f1.bin",
        md5=md5(PAYLOAD),
        size=len(PAYLOAD),
        policy=FAST,
    ).path
    assert target.read_bytes() == PAYLOAD
    assert not (tmp_path / "f1.bin.part").exists()


def test_truncated_transfer_resumes_with_a_range_request(httpserver, tmp_path):
    half = len(PAYLOAD) // 2
    ranges = []

    def rest(request: Request) -> Response:
        ranges.append(request.headers.get("Range"))
        start = int(request.headers["Range"].removeprefix("bytes=").rstrip("-"))
        return Response(PAYLOAD[start:], status=206)

    # First transfer breaks off half way; the second asks only for the missing bytes.
    httpserver.expect_ordered_request("/data/f2").respond_with_data(PAYLOAD[:half])
    httpserver.expect_ordered_request("/data/f2").respond_with_handler(rest)
    target = fetch_verified(
        httpserver.url_for("/data/f2"),
        tmp_path / "f2.bin",
        md5=md5(PAYLOAD),
        size=len(PAYLOAD),
        policy=FAST,
    ).path
    assert ranges == [f"bytes={half}-"]
    assert target.read_bytes() == PAYLOAD


def test_partial_file_from_an_earlier_run_resumes(httpserver, tmp_path):
    (tmp_path / "f3.bin.part").write_bytes(PAYLOAD[:1000])
    httpserver.expect_request("/data/f3", headers={"Range": "bytes=1000-"}).respond_with_data(
        PAYLOAD[1000:], status=206
    )
    fetch_verified(
        httpserver.url_for("/data/f3"), tmp_path / "f3.bin", md5=md5(PAYLOAD), policy=FAST
    )
    assert (tmp_path / "f3.bin").read_bytes() == PAYLOAD


def test_md5_mismatch_redownloads_then_succeeds(httpserver, tmp_path):
    corrupt = bytearray(PAYLOAD)
    corrupt[5] ^= 0xFF
    httpserver.expect_ordered_request("/data/f4").respond_with_data(bytes(corrupt))
    httpserver.expect_ordered_request("/data/f4").respond_with_data(PAYLOAD)
    fetch_verified(
        httpserver.url_for("/data/f4"), tmp_path / "f4.bin", md5=md5(PAYLOAD), policy=FAST
    )
    assert (tmp_path / "f4.bin").read_bytes() == PAYLOAD
    assert len(httpserver.log) == 2


def test_persistent_md5_mismatch_stops_with_a_clear_error(httpserver, tmp_path):
    httpserver.expect_request("/data/f5").respond_with_data(b"not the file")
    with pytest.raises(DownloadError, match=r"after 4 attempts.*md5 [0-9a-f]{32}, expected"):
        fetch_verified(
            httpserver.url_for("/data/f5"), tmp_path / "f5.bin", md5=md5(PAYLOAD), policy=FAST
        )
    assert len(httpserver.log) == 4  # the first try and three re-downloads
    assert not (tmp_path / "f5.bin").exists()
    assert not (tmp_path / "f5.bin.part").exists()


def test_server_error_then_success_backs_off(httpserver, tmp_path):
    waits = []
    httpserver.expect_ordered_request("/data/f6").respond_with_data("busy", status=500)
    httpserver.expect_ordered_request("/data/f6").respond_with_data("busy", status=503)
    httpserver.expect_ordered_request("/data/f6").respond_with_data(PAYLOAD)
    fetch_verified(
        httpserver.url_for("/data/f6"),
        tmp_path / "f6.bin",
        size=len(PAYLOAD),
        policy=RetryPolicy(retries=3, backoff_s=1.5),
        sleep=waits.append,
    )
    assert waits == [1.5, 3.0]  # exponential back-off
    assert (tmp_path / "f6.bin").read_bytes() == PAYLOAD


def test_not_found_stops_at_once_with_a_clear_error(httpserver, tmp_path):
    httpserver.expect_request("/data/missing").respond_with_data("no", status=404)
    with pytest.raises(DownloadError, match=r"HTTP 404.*does not exist on the server"):
        fetch_verified(httpserver.url_for("/data/missing"), tmp_path / "m.bin", policy=FAST)
    assert len(httpserver.log) == 1


def test_server_errors_until_the_end_give_up(httpserver, tmp_path):
    httpserver.expect_request("/data/down").respond_with_data("down", status=502)
    with pytest.raises(DownloadError, match=r"giving up .* after 4 attempts; last problem: HTTP"):
        fetch_verified(httpserver.url_for("/data/down"), tmp_path / "d.bin", policy=FAST)


@pytest.mark.parametrize(
    "name", ["../evil.dcm", "a/../../evil", "/etc/passwd", "..\\..\\evil", "C:evil", ""]
)
def test_path_traversal_names_are_refused(tmp_path, name):
    with pytest.raises(DownloadError, match="refused file name"):
        safe_target(tmp_path / "series", name)


def test_safe_names_stay_inside(tmp_path):
    assert safe_target(tmp_path, "a/b.dcm") == (tmp_path / "a" / "b.dcm").resolve()


# --------------------------------------------------------------------------- IDC bucket


def s3_listing(prefix: str, objects: dict[str, bytes], multipart: str = "") -> str:
    """An S3 ListObjectsV2 page (the layout the public IDC bucket returns)."""
    contents = "".join(
        f"<Contents><Key>{prefix}/{name}</Key><LastModified>2024-01-01T00:00:00.000Z"
        f"</LastModified><ETag>&quot;{md5(data) if name != multipart else md5(data) + '-2'}"
        f"&quot;</ETag><Size>{len(data)}</Size><StorageClass>STANDARD</StorageClass>"
        "</Contents>"
        for name, data in objects.items()
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        f"<Name>idc-open-data</Name><Prefix>{prefix}/</Prefix><KeyCount>{len(objects)}"
        f"</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>{contents}"
        "</ListBucketResult>"
    )


SERIES = "6e96252b-0b0c-48c5-928e-9f40537a7533"  # a crdc_series_uuid of the shipped index


def dicom_instance(number: int) -> bytes:
    """A small real CT instance (pydicom's CT_small test file) with its own SOP instance UID."""
    dataset = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID = (
        f"{dataset.SOPInstanceUID}.{number}"
    )
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_idc_series_download_checks_count_and_md5(httpserver, tmp_path):
    # inst2's ETag is a multipart one (no md5): it is accepted after pydicom reads it.
    instances = {f"inst{i}.dcm": dicom_instance(i) for i in range(3)}
    httpserver.expect_request(
        "/", query_string={"list-type": "2", "prefix": f"{SERIES}/"}
    ).respond_with_data(s3_listing(SERIES, instances, multipart="inst2.dcm"))
    for name, data in instances.items():
        httpserver.expect_request(f"/{SERIES}/{name}").respond_with_data(data)
    files = download_series(httpserver.url_for("/"), SERIES, tmp_path / "s", 3, policy=FAST)
    paths = [f.path for f in files]
    assert sorted(p.name for p in paths) == sorted(instances)
    assert all(p.read_bytes() == instances[p.name] for p in paths)
    assert [f.checked.split(";")[0] for f in files] == [
        "size and md5 from the server",
        "size and md5 from the server",
        "size from the server",
    ]
    assert "pixel data decoded" in files[2].checked
    objects, token = parse_s3_listing(s3_listing(SERIES, instances, multipart="inst2.dcm"))
    assert token is None
    assert [o.md5 is None for o in objects] == [False, False, True]


def test_idc_instance_count_mismatch_is_an_error(httpserver, tmp_path):
    httpserver.expect_request("/").respond_with_data(s3_listing(SERIES, {"a.dcm": b"x"}))
    with pytest.raises(DownloadError, match=r"lists 1 instance.*the index 43"):
        download_series(httpserver.url_for("/"), SERIES, tmp_path / "s", 43, policy=FAST)


def test_idc_listing_with_a_traversal_key_writes_nothing(httpserver, tmp_path):
    httpserver.expect_request("/").respond_with_data(
        s3_listing(SERIES, {"../../outside.dcm": b"x"})
    )
    with pytest.raises(DownloadError, match=r"refused file name '\.\./\.\./outside\.dcm'"):
        download_series(httpserver.url_for("/"), SERIES, tmp_path / "s", 1, policy=FAST)
    assert not list(tmp_path.rglob("*.dcm"))


# --------------------------------------------------------------------------- GDC


STAR = (SHARED / "api_samples" / "gdc_augmented_star_gene_counts_format_example.tsv").read_bytes()


def gdc_file_hit(index: int, sample_type: str = "Primary Tumor", code: str = "01A") -> dict:
    """A /files hit with the fields hccrad asks for (GDC's nested cases/samples layout)."""
    file_id = f"00000000-0000-4000-8000-{index:012d}"
    return {
        "id": file_id,
        "file_id": file_id,
        "file_name": f"{file_id}.rna_seq.augmented_star_gene_counts.tsv",
        "md5sum": md5(STAR),
        "file_size": len(STAR),
        "data_category": "Transcriptome Profiling",
        "data_type": "Gene Expression Quantification",
        "cases": [
            {
                "submitter_id": f"TCGA-Z9-A{index:03d}",
                "project": {"project_id": "TCGA-LIHC"},
                "samples": [
                    {"submitter_id": f"TCGA-Z9-A{index:03d}-{code}", "sample_type": sample_type}
                ],
            }
        ],
    }


def gdc_page(hits: list[dict], start: int, total: int, size: int) -> dict:
    """A GDC search response page (data.hits + data.pagination, as the API returns)."""
    return {
        "data": {
            "hits": hits,
            "pagination": {
                "count": len(hits),
                "total": total,
                "size": size,
                "from": start,
                "sort": "",
                "page": start // size + 1,
                "pages": -(-total // size),
            },
        },
        "warnings": {},
    }


def test_gdc_files_query_pages_downloads_and_builds_the_sample_sheet(httpserver, tmp_path):
    hits = [gdc_file_hit(1), gdc_file_hit(2), gdc_file_hit(3, "Solid Tissue Normal", "11A")]
    bodies = []

    def page(request: Request) -> Response:
        body = json.loads(request.data)
        bodies.append(body)
        start = body["from"]
        return Response(
            json.dumps(gdc_page(hits[start : start + 2], start, 3, 2)),
            content_type="application/json",
        )

    httpserver.expect_request("/files", method="POST").respond_with_handler(page)
    for hit in hits:
        httpserver.expect_request(f"/data/{hit['file_id']}").respond_with_data(STAR)
    base = httpserver.url_for("/")
    filters = gdc_filters("TCGA-LIHC", {"analysis.workflow_type": "STAR - Counts"})
    found = list(gdc_hits(base, "files", filters, ["file_id"], page_size=2, policy=FAST))
    assert [b["from"] for b in bodies] == [0, 2]
    assert bodies[0]["filters"]["content"][0]["content"]["value"] == ["TCGA-LIHC"]
    assert [h["file_id"] for h in found] == [h["file_id"] for h in hits]

    files = tmp_path / "files"
    gdc_download_files(base, found, files, policy=FAST)
    sheet_path = tmp_path / "gdc_sample_sheet.tsv"
    gdc_sample_sheet(found).to_csv(sheet_path, sep="\t", index=False)
    # What the expression import reads is exactly what the download wrote.
    sheet = read_sample_sheet(sheet_path)
    counts, _ = read_star_files(sheet, files)
    assert list(counts.columns) == [h["file_id"] for h in hits]
    assert counts.shape[0] > 90  # the example's 97 genes, less the PAR_Y copies dropped
    assert (counts.nunique(axis=1) == 1).all()  # every file is the same example


def test_gdc_pooled_file_is_refused():
    hit = gdc_file_hit(1)
    hit["cases"].append(hit["cases"][0])
    with pytest.raises(DownloadError, match="pooled over 2 case"):
        gdc_sample_sheet([hit])


def test_gdc_file_name_with_traversal_is_refused():
    hit = gdc_file_hit(1)
    hit["file_name"] = "../../counts.tsv"
    with pytest.raises(DownloadError, match="refused file name"):
        gdc_sample_sheet([hit])


def test_gdc_cases_become_a_clinical_table():
    recorded = json.loads((SHARED / "api_samples" / "gdc_api_cases_list_response.json").read_text())
    cases = [
        {
            "submitter_id": "TCGA-Z9-A001",
            "demographic": {"gender": "male", "vital_status": "Dead", "days_to_death": 730.5},
            "diagnoses": [{"age_at_diagnosis": 21915, "ajcc_pathologic_stage": "Stage II"}],
        },
        {
            "submitter_id": "TCGA-Z9-A002",
            "demographic": {"gender": "female", "vital_status": "Alive"},
            "diagnoses": [{"days_to_last_follow_up": 365.25}],
        },
    ]
    table = gdc_clinical_table(cases)
    assert table["os_time"].round(6).tolist() == [24.0, 12.0]
    assert table["os_event"].tolist() == [1, 0]
    assert table["sex"].tolist() == ["M", "F"]
    assert table.loc[0, "age"] == pytest.approx(60.0, abs=0.01)
    # The recorded real /cases page (no clinical fields requested) still parses.
    real = gdc_clinical_table(recorded["response"]["data"]["hits"])
    assert len(real) == len(recorded["response"]["data"]["hits"])
    assert real["os_time"].isna().all()
    assert isinstance(real, pd.DataFrame)

"""Damaged downloads: each failure names the URL or file and the fix, and keeps what was verified.

A local HTTP server (pytest-httpserver) plays the GDC API and the IDC bucket in their real
response layouts (see tests/test_download.py); every case counts the requests it gets, so a
rerun that fetches a verified file again fails the test.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
from collections import Counter

import pandas as pd
import pytest
import yaml
from conftest import ROOT, load_default_config, workflow_command
from snakemake.utils import update_config
from test_download import STAR, dicom_instance, gdc_file_hit, gdc_page, s3_listing
from werkzeug import Request, Response

from hccrad.cohorts.download import (
    DownloadError,
    RetryPolicy,
    fetch_verified,
    link_files,
    verified_table,
)
from hccrad.cohorts.gdc import gdc_download_files, gdc_hits
from hccrad.cohorts.idc_download import download_patient, download_series, list_series
from hccrad.radiogenomics.expression import load_star_cohort

FAST = RetryPolicy(retries=2, backoff_s=0.0, timeout_s=5.0)
ATTEMPTS = FAST.retries + 1
PAYLOAD = bytes(range(256)) * 40  # 10 kB
LOGIN_PAGE = (
    "<!DOCTYPE html><html><head><title>Proxy login</title></head>"
    "<body><form action='/login'>user <input name='u'></form></body></html>"
)
SERIES = ("6e96252b-0b0c-48c5-928e-9f40537a7533", "0b6b1c2e-6f0e-4a57-9d3c-3f1a3c5e2d11")


def md5(data: bytes) -> str:
    """Hex md5 of bytes."""
    return hashlib.md5(data).hexdigest()


def requests_to(httpserver, prefix: str) -> Counter:
    """How often each path starting with ``prefix`` was requested."""
    return Counter(r.path for r, _ in httpserver.log if r.path.startswith(prefix))


# --------------------------------------------------------------------------- interrupted runs


def test_interrupted_gdc_download_keeps_verified_files_and_the_rerun_fetches_only_the_missing_one(
    httpserver, tmp_path
):
    hits = [gdc_file_hit(i) for i in (1, 2, 3)]
    broken = hits[1]["file_id"]
    for hit in hits:
        status = 500 if hit["file_id"] == broken else 200
        httpserver.expect_request(f"/data/{hit['file_id']}").respond_with_data(
            STAR if status == 200 else "internal error", status=status
        )
    base, folder = httpserver.url_for("/"), tmp_path / "data"
    with pytest.raises(DownloadError) as failure:
        gdc_download_files(base, hits, folder, policy=FAST)
    message = str(failure.value)
    assert f"/data/{broken}" in message and "HTTP 500" in message
    assert "1 of 3 file(s) not downloaded" in message
    assert "the 2 verified file(s) are kept" in message and "Fix:" in message
    kept = sorted(p.parent.name for p in folder.rglob("*.tsv"))
    assert kept == sorted(h["file_id"] for h in hits if h["file_id"] != broken)
    assert requests_to(httpserver, "/data/")[f"/data/{broken}"] == ATTEMPTS

    # The server is back: the rerun asks only for the missing file.
    httpserver.clear()
    for hit in hits:
        httpserver.expect_request(f"/data/{hit['file_id']}").respond_with_data(STAR)
    files = gdc_download_files(base, hits, folder, policy=FAST)
    assert requests_to(httpserver, "/data/") == Counter({f"/data/{broken}": 1})
    assert [f.path.read_bytes() == STAR for f in files] == [True, True, True]
    assert verified_table(files, folder)["checked"].tolist() == ["size and md5 from the server"] * 3


def test_interrupted_idc_download_keeps_verified_instances_and_the_rerun_fetches_the_rest(
    httpserver, tmp_path
):
    served = {
        uuid: {f"i{k}.dcm": PAYLOAD[: 500 + 10 * k + n] for k in range(3)}
        for n, uuid in enumerate(SERIES)
    }
    broken = f"/{SERIES[1]}/i1.dcm"
    for uuid, files in served.items():
        httpserver.expect_request(
            "/", query_string={"list-type": "2", "prefix": f"{uuid}/"}
        ).respond_with_data(s3_listing(uuid, files))
        for name, data in files.items():
            path = f"/{uuid}/{name}"
            httpserver.expect_request(path).respond_with_data(
                "unavailable" if path == broken else data, status=503 if path == broken else 200
            )
    manifest = pd.DataFrame(
        {"role": ["arterial", "segmentation"], "crdc_series_uuid": SERIES, "instance_count": 3}
    )
    folder = tmp_path / "data" / "HCC_001"
    with pytest.raises(DownloadError) as failure:
        download_patient(httpserver.url_for("/"), manifest, folder, FAST)
    message = str(failure.value)
    assert broken in message and "HTTP 503" in message and "Fix:" in message
    assert "1 of 6 file(s) not downloaded; the 5 verified file(s) are kept" in message
    assert len(list(folder.rglob("*.dcm"))) == 5
    assert not (folder / "segmentation" / "i1.dcm").exists()

    httpserver.clear()
    for uuid, files in served.items():
        httpserver.expect_request(
            "/", query_string={"list-type": "2", "prefix": f"{uuid}/"}
        ).respond_with_data(s3_listing(uuid, files))
        for name, data in files.items():
            httpserver.expect_request(f"/{uuid}/{name}").respond_with_data(data)
    files = download_patient(httpserver.url_for("/"), manifest, folder, FAST)
    fetched = {p: n for p, n in requests_to(httpserver, "/").items() if p != "/"}
    assert fetched == {broken: 1}
    assert len(files) == 6 and len(list(folder.rglob("*.dcm"))) == 6
    assert verified_table(files, folder)["path"].tolist()[3:] == [
        f"segmentation/i{k}.dcm" for k in range(3)
    ]


def test_failed_gdc_download_job_in_the_workflow_keeps_verified_files_for_the_rerun(
    httpserver, tmp_path, snakemake_bin
):
    # The rule itself: Snakemake deletes the outputs of a failed job, so the downloads must
    # live outside them (download.data_dir) for the promise "finished files are kept" to hold.
    hits = [gdc_file_hit(i) for i in (1, 2, 3)]
    broken = hits[2]["file_id"]

    def files_query(request: Request) -> Response:
        body = json.loads(request.data)
        page = gdc_page(hits[body["from"] :], body["from"], len(hits), body["size"])
        return Response(json.dumps(page), content_type="application/json")

    def serve(broken_status: int) -> None:
        httpserver.clear()
        httpserver.expect_request("/files", method="POST").respond_with_handler(files_query)
        for hit in hits:
            bad = hit["file_id"] == broken and broken_status != 200
            httpserver.expect_request(f"/data/{hit['file_id']}").respond_with_data(
                "busy" if bad else STAR, status=broken_status if bad else 200
            )

    workdir, data = tmp_path / "run", tmp_path / "data"
    workdir.mkdir()
    # config/tcga_lihc.yaml over the default, as --configfile merges them.
    config = load_default_config()
    update_config(config, yaml.safe_load((ROOT / "config" / "tcga_lihc.yaml").read_text()))
    config["download"] |= {
        "data_dir": str(data),
        "gdc_base_url": httpserver.url_for("/").rstrip("/"),
        "retries": 1,
        "backoff_s": 0.0,
    }
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    target = "results/tcga_lihc/rnaseq/gdc_files.tsv"
    command = [*workflow_command(snakemake_bin, workdir, target), "--cores", "1"]

    serve(500)
    first = subprocess.run(command, capture_output=True, encoding="utf-8", timeout=600)
    assert first.returncode != 0
    log = (workdir / "logs" / "tcga_lihc" / "download_gdc_rnaseq.log").read_text()
    assert f"/data/{broken}" in log and "HTTP 500" in log and "Fix:" in log
    kept = sorted(p.parent.name for p in (data / "tcga_lihc" / "gdc").rglob("*.tsv"))
    assert kept == sorted(h["file_id"] for h in hits[:2])
    assert not (workdir / target).exists()

    serve(200)
    second = subprocess.run(command, capture_output=True, encoding="utf-8", timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    assert requests_to(httpserver, "/data/") == Counter({f"/data/{broken}": 1})
    assert len(pd.read_csv(workdir / target, sep="\t")) == 3
    cohort = load_star_cohort(
        workdir / "results/tcga_lihc/rnaseq/gdc_sample_sheet.tsv",
        workdir / "results/tcga_lihc/rnaseq/files",
        progress=False,
    )
    assert cohort.counts.shape[1] == 3  # every file, read through the links


# --------------------------------------------------------------------------- wrong answers


def test_gdc_query_answered_by_a_proxy_login_page_names_the_url_what_came_back_and_the_fix(
    httpserver,
):
    httpserver.expect_request("/files", method="POST").respond_with_data(
        LOGIN_PAGE, content_type="text/html; charset=utf-8"
    )
    with pytest.raises(DownloadError) as failure:
        list(gdc_hits(httpserver.url_for("/"), "files", {}, ["file_id"], policy=FAST))
    message = str(failure.value)
    assert httpserver.url_for("/files") in message
    assert "expected GDC JSON" in message and "text/html; charset=utf-8" in message
    assert "<!DOCTYPE html><html><head><title>Proxy login" in message
    assert "Fix: check download.gdc_base_url" in message and "HTTPS_PROXY" in message
    assert len(httpserver.log) == 1  # a page is not retried: it will not turn into JSON


def test_idc_listing_answered_by_a_login_page_names_the_url_what_came_back_and_the_fix(
    httpserver, tmp_path
):
    httpserver.expect_request("/").respond_with_data(LOGIN_PAGE, content_type="text/html")
    with pytest.raises(DownloadError) as failure:
        list_series(httpserver.url_for("/"), SERIES[0], policy=FAST)
    message = str(failure.value)
    assert httpserver.url_for("/") in message and "an S3 bucket listing (XML)" in message
    assert "text/html" in message and "Fix: check download.idc_base_url" in message


def test_file_answered_by_a_login_page_says_a_web_page_came_back_instead_of_the_file(
    httpserver, tmp_path
):
    httpserver.expect_request("/data/f1").respond_with_data(LOGIN_PAGE, content_type="text/html")
    target = tmp_path / "f1.rna_seq.augmented_star_gene_counts.tsv"
    with pytest.raises(DownloadError) as failure:
        fetch_verified(httpserver.url_for("/data/f1"), target, md5=md5(STAR), policy=FAST)
    message = str(failure.value)
    assert httpserver.url_for("/data/f1") in message and str(target) in message
    assert "the server sent text/html, a web page (a proxy login page?)" in message
    assert "Fix: " in message
    assert not target.exists() and len(httpserver.log) == ATTEMPTS


# --------------------------------------------------------------------------- no md5: content


def test_gzip_without_md5_is_decompressed_before_it_is_accepted(httpserver, tmp_path):
    packed = gzip.compress(PAYLOAD)
    httpserver.expect_ordered_request("/data/g").respond_with_data(packed[: len(packed) // 2])
    httpserver.expect_ordered_request("/data/g").respond_with_data(packed)
    target = tmp_path / "counts.txt.gz"
    verified = fetch_verified(httpserver.url_for("/data/g"), target, policy=FAST)
    assert verified.checked == (
        f"no md5 from the server; gzip decompressed to its end ({len(PAYLOAD)} B)"
    )
    assert target.read_bytes() == packed and len(httpserver.log) == 2


def test_cut_gzip_without_md5_is_refused_naming_the_file_the_check_and_the_fix(
    httpserver, tmp_path
):
    packed = gzip.compress(PAYLOAD)
    httpserver.expect_request("/data/g").respond_with_data(packed[:-20])
    target = tmp_path / "counts.txt.gz"
    with pytest.raises(DownloadError) as failure:
        fetch_verified(httpserver.url_for("/data/g"), target, policy=FAST)
    message = str(failure.value)
    assert httpserver.url_for("/data/g") in message and str(target) in message
    assert "fails its content check: the gzip stream does not decompress" in message
    assert "Fix:" in message
    assert not target.exists() and not list(tmp_path.glob("*.part"))


def test_star_counts_without_md5_must_parse_before_they_are_accepted(httpserver, tmp_path):
    good, bad = gdc_file_hit(1), gdc_file_hit(2)
    for hit in (good, bad):
        del hit["md5sum"], hit["file_size"]
    cut = STAR[: STAR.rindex(b"\n", 0, len(STAR) - 1) + 25]  # the last line cut in the middle
    httpserver.expect_request(f"/data/{good['file_id']}").respond_with_data(STAR)
    httpserver.expect_request(f"/data/{bad['file_id']}").respond_with_data(cut)
    with pytest.raises(DownloadError) as failure:
        gdc_download_files(httpserver.url_for("/"), [good, bad], tmp_path, policy=FAST)
    message = str(failure.value)
    assert f"/data/{bad['file_id']}" in message and bad["file_name"] in message
    assert "not a complete GDC STAR counts table" in message and "Fix:" in message
    kept = list(tmp_path.rglob("*.tsv"))
    assert [p.parent.name for p in kept] == [good["file_id"]]
    again = gdc_download_files(httpserver.url_for("/"), [good], tmp_path, policy=FAST)
    assert again[0].checked.startswith("no md5 from the server; STAR counts table parsed")


def test_dicom_without_md5_must_be_read_by_pydicom_before_it_is_accepted(httpserver, tmp_path):
    instances = {"a.dcm": dicom_instance(1), "b.dcm": dicom_instance(2)}
    cut = instances["b.dcm"][: len(instances["b.dcm"]) - 5000]
    # A multipart ETag: the listing gives b.dcm's size but no md5, and the bucket holds a cut
    # b.dcm of that size (an object damaged at upload); only its content can tell.
    listing = s3_listing(SERIES[0], {"a.dcm": instances["a.dcm"], "b.dcm": cut}, multipart="b.dcm")
    httpserver.expect_request("/").respond_with_data(listing)
    httpserver.expect_request(f"/{SERIES[0]}/a.dcm").respond_with_data(instances["a.dcm"])
    httpserver.expect_request(f"/{SERIES[0]}/b.dcm").respond_with_data(cut)
    with pytest.raises(DownloadError) as failure:
        download_series(httpserver.url_for("/"), SERIES[0], tmp_path, 2, policy=FAST)
    message = str(failure.value)
    assert f"/{SERIES[0]}/b.dcm" in message and str(tmp_path / "b.dcm") in message
    assert "fails its content check" in message and "pixel data" in message
    assert "Fix:" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.dcm"]


# --------------------------------------------------------------------------- HTTP failures


def test_missing_file_404_names_the_url_the_file_and_the_fix_at_once(httpserver, tmp_path):
    httpserver.expect_request("/data/gone").respond_with_data("not found", status=404)
    with pytest.raises(DownloadError) as failure:
        fetch_verified(httpserver.url_for("/data/gone"), tmp_path / "gone.tsv", policy=FAST)
    message = str(failure.value)
    assert message.startswith(f"{httpserver.url_for('/data/gone')}: HTTP 404 (NOT FOUND)")
    assert "gone.tsv" in message and "does not exist on the server" in message
    assert "Fix: check the id in the manifest and the base URL" in message
    assert len(httpserver.log) == 1 and not list(tmp_path.iterdir())


def test_server_error_500_after_every_retry_names_the_attempts_and_the_fix(httpserver, tmp_path):
    waits: list[float] = []
    httpserver.expect_request("/data/down").respond_with_data("down", status=500)
    policy = RetryPolicy(retries=3, backoff_s=0.5, timeout_s=5.0)
    with pytest.raises(DownloadError) as failure:
        fetch_verified(
            httpserver.url_for("/data/down"), tmp_path / "d.tsv", policy=policy, sleep=waits.append
        )
    message = str(failure.value)
    assert httpserver.url_for("/data/down") in message and str(tmp_path / "d.tsv") in message
    assert "after 4 attempts; last problem: HTTP 500 (INTERNAL SERVER ERROR)" in message
    assert "Fix: the server is failing or busy: wait and rerun" in message
    assert waits == [0.5, 1.0, 2.0] and len(httpserver.log) == 4


def test_body_shorter_than_content_length_names_the_cut_keeps_it_and_the_rerun_resumes(
    httpserver, tmp_path
):
    big = bytes(range(256)) * (5 * 4096)  # 5 MiB: requests writes whole 1 MiB chunks
    sent = 3 * (1 << 19)  # 1.5 MiB a response: one whole chunk arrives, the rest breaks off

    def cut(request: Request) -> Response:
        start = int(request.headers.get("Range", "bytes=0-").removeprefix("bytes=").rstrip("-"))
        # Announce the whole rest, send 1.5 MiB, close: a proxy cutting long transfers.
        return Response(
            iter([big[start : start + sent]]),
            status=206 if start else 200,
            headers={"Content-Length": str(len(big) - start)},
            direct_passthrough=True,
        )

    httpserver.expect_request("/data/long").respond_with_handler(cut)
    target = tmp_path / "long.bin"
    with pytest.raises(DownloadError) as failure:
        fetch_verified(httpserver.url_for("/data/long"), target, md5=md5(big), policy=FAST)
    message = str(failure.value)
    assert httpserver.url_for("/data/long") in message and str(target) in message
    assert (
        f"the body ended before the {len(big) - (2 << 20)} B the server announced "
        f"(Content-Length): the transfer was cut; {3 << 20} B kept for the resume" in message
    )
    assert "Fix: check the network" in message and "long.bin.part resumes" in message
    # Each attempt resumed where the last stopped; the partial file stays for the rerun.
    ranges = [r.headers.get("Range") for r, _ in httpserver.log]
    assert ranges == [None, f"bytes={1 << 20}-", f"bytes={2 << 20}-"]
    assert (tmp_path / "long.bin.part").read_bytes() == big[: 3 << 20] and not target.exists()

    httpserver.clear()
    httpserver.expect_request("/data/long").respond_with_handler(
        lambda request: Response(big[3 << 20 :], status=206)
    )
    fetch_verified(httpserver.url_for("/data/long"), target, md5=md5(big), policy=FAST)
    assert [r.headers.get("Range") for r, _ in httpserver.log] == [f"bytes={3 << 20}-"]
    assert target.read_bytes() == big


def test_wrong_md5_names_the_url_the_file_both_md5s_and_the_fix(httpserver, tmp_path):
    other = PAYLOAD[::-1]
    httpserver.expect_request("/data/f").respond_with_data(other)
    target = tmp_path / "f.bin"
    with pytest.raises(DownloadError) as failure:
        fetch_verified(httpserver.url_for("/data/f"), target, md5=md5(PAYLOAD), policy=FAST)
    message = str(failure.value)
    assert httpserver.url_for("/data/f") in message and str(target) in message
    assert f"md5 {md5(other)}, expected {md5(PAYLOAD)}" in message
    assert "Fix: the server sends another file than the one it describes" in message
    assert not target.exists() and len(httpserver.log) == ATTEMPTS


def test_links_of_the_rule_output_point_at_the_verified_files(httpserver, tmp_path):
    hits = [gdc_file_hit(1), gdc_file_hit(2)]
    for hit in hits:
        httpserver.expect_request(f"/data/{hit['file_id']}").respond_with_data(STAR)
    data, links = tmp_path / "data", tmp_path / "results" / "files"
    files = gdc_download_files(httpserver.url_for("/"), hits, data, policy=FAST)
    made = link_files(files, data, links)
    assert [p.is_symlink() and p.read_bytes() == STAR for p in made] == [True, True]
    assert sorted(p.relative_to(links).as_posix() for p in made) == sorted(
        f"{h['file_id']}/{h['file_name']}" for h in hits
    )

"""Downloads over HTTP: resume, retry with back-off, size/md5 checks, no writes outside a folder.

The same ``fetch_verified`` serves the GDC (RNA-seq files by id, md5 from the /files endpoint,
hccrad.cohorts.gdc) and the Imaging Data Commons buckets (DICOM instances listed by the bucket's
S3 listing, md5 = ETag, hccrad.cohorts.idc_download); a file without md5 passes only its content
check (hccrad.cohorts.content_checks).
Every base URL comes from the config, so the tests point it at a local recorded server.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import pandas as pd
import requests

from hccrad.cohorts.content_checks import CHUNK_BYTES, ContentCheck, ContentError, check_for

log = logging.getLogger(__name__)

# HTTP statuses worth another try: the server or a proxy was busy, not the request wrong.
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


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


@dataclass(frozen=True)
class VerifiedFile:
    """A downloaded file that passed its checks, and what those checks were."""

    path: Path
    url: str
    size: int
    md5: str
    checked: str  # e.g. "size and md5 from the server", "gzip decompressed to its end ..."


VERIFIED_COLUMNS = ("path", "url", "size", "md5", "checked")


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


# --------------------------------------------------------------------------- one file


def _integrity(path: Path, md5: str | None, size: int | None) -> str | None:
    """None when ``path`` has the expected size and md5, else what differs."""
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        return f"size {actual_size} B, expected {size} B"
    if md5 is not None and (actual := file_md5(path)) != md5.lower():
        return f"md5 {actual}, expected {md5}"
    return None


def _content(path: Path, md5: str | None, size: int | None, check: ContentCheck | None) -> str:
    """What vouches for a file whose size and md5 passed; ContentError if its content fails."""
    if md5 is not None:
        return "size and md5 from the server" if size is not None else "md5 from the server"
    if check is None:
        return (
            "size from the server only (no md5, no content check for this file type)"
            if size is not None
            else "nothing: no md5 or size from the server, no content check for this file type"
        )
    return ("size from the server; " if size is not None else "no md5 from the server; ") + check(
        path
    )


@dataclass(frozen=True)
class _Answer:
    """What one GET brought: status, content type and, if the body broke off, why."""

    status: int
    reason: str
    content_type: str
    broken: str | None = None


def _transfer(session: requests.Session, url: str, part: Path, policy: RetryPolicy) -> _Answer:
    """Stream ``url`` into ``part``, resuming from its length with a Range request."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    with session.get(url, headers=headers, stream=True, timeout=policy.timeout_s) as response:
        answer = _Answer(
            response.status_code, response.reason, response.headers.get("Content-Type", "")
        )
        if response.status_code == 416 or response.status_code >= 400:
            return answer  # 416: the part already holds every byte
        # 206: the server resumed; 200: it sent the whole file again, so start over.
        mode = "ab" if response.status_code == 206 and offset else "wb"
        announced = response.headers.get("Content-Length")
        try:
            with part.open(mode) as handle:
                for chunk in response.iter_content(CHUNK_BYTES):
                    handle.write(chunk)
        except (
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,
        ) as error:
            # requests drops the last incomplete chunk, so what is kept is counted separately.
            kept = f"{part.stat().st_size if part.exists() else 0} B kept for the resume"
            cut = (
                f"the body ended before the {announced} B the server announced "
                f"(Content-Length): the transfer was cut; {kept} ({error})"
                if announced
                else f"the transfer broke; {kept} ({type(error).__name__}: {error})"
            )
            return _Answer(answer.status, answer.reason, answer.content_type, cut)
        return answer


def _looks_like_a_page(content_type: str) -> str:
    """A hint when a file download came back as a web page (a proxy's login page)."""
    if "html" in content_type.lower():
        return f"; the server sent {content_type}, a web page (a proxy login page?), not the file"
    return ""


def _refusal(url: str, target: Path, answer: _Answer) -> DownloadError:
    """The error for a status that another try will not change (404, 403, ...)."""
    if answer.status == 404:
        problem = "the file does not exist on the server"
        fix = (
            "check the id in the manifest and the base URL in the config (download.gdc_base_url "
            "or download.idc_base_url); a file withdrawn in a newer data release must leave the "
            "manifest"
        )
    elif answer.status in (401, 403):
        problem = "the server refused access"
        fix = (
            "hccrad downloads open-access data only; check the base URL in the config, and that "
            "a proxy does not require a login"
        )
    else:
        problem = "the server refused the request"
        fix = "check the base URL in the config (download.gdc_base_url or download.idc_base_url)"
    return DownloadError(
        f"{url}: HTTP {answer.status} ({answer.reason}) for {target.name}: {problem}. Fix: {fix}."
    )


def fetch_verified(
    url: str,
    target: Path,
    *,
    md5: str | None = None,
    size: int | None = None,
    check: ContentCheck | None = None,
    session: requests.Session | None = None,
    policy: RetryPolicy = RetryPolicy(),
    sleep: Callable[[float], None] = time.sleep,
) -> VerifiedFile:
    """Download ``url`` to ``target`` with resume, retries, back-off and checks; say what passed.

    Size and md5 come from the server; a file without md5 is checked by its content
    (``check``, by default chosen from the file name: STAR counts, gzip, DICOM). Hand-written
    rather than urllib3's Retry: a checksum or content failure must also trigger a fresh
    download, and a broken transfer must resume from the bytes already on disk.
    """
    session = session or requests.Session()
    check = check if check is not None else check_for(target.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and _integrity(target, md5, size) is None:
        try:
            return _verified_file(url, target, md5, size, check)
        except ContentError as error:
            log.warning(
                "%s: the file on disk fails its check (%s); downloading again", target, error
            )
    part = target.with_name(target.name + ".part")
    problem, fix = "no attempt", ""
    for attempt in range(policy.retries + 1):
        if attempt:
            log.warning("%s: attempt %d failed (%s); retrying", url, attempt, problem)
            policy.wait(attempt, sleep)
        try:
            answer = _transfer(session, url, part, policy)
        except (
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,
        ) as error:
            problem = f"{type(error).__name__}: {error}"
            fix = "check the network and the base URL in the config, then rerun"
            continue
        if answer.status >= 400 and answer.status != 416:
            if answer.status not in RETRY_STATUSES:
                raise _refusal(url, target, answer)
            problem = f"HTTP {answer.status} ({answer.reason})"
            fix = "the server is failing or busy: wait and rerun"
            continue
        if answer.broken:
            problem = answer.broken
            fix = (
                f"check the network (a proxy cutting long transfers?) and rerun: {part.name} "
                "resumes"
            )
            continue  # the next attempt resumes from the bytes on disk
        if not part.exists():
            part.touch()
        if size is not None and part.stat().st_size < size:
            problem = f"transfer stopped at {part.stat().st_size} of {size} B"
            fix = f"check the network and rerun: {part.name} resumes"
            continue  # the next attempt resumes from here
        mismatch = _integrity(part, md5, size)
        if mismatch is not None:
            problem = f"downloaded file has {mismatch}{_looks_like_a_page(answer.content_type)}"
            fix = (
                "the server sends another file than the one it describes: check the base URL "
                "(a proxy or mirror?) and rerun; if it persists, report the file to the data portal"
            )
            part.unlink()  # a corrupt file cannot be resumed: fetch it whole again
            continue
        # The content check goes by the file name (.gz, .dcm), so it reads the renamed file.
        part.replace(target)
        try:
            return _verified_file(url, target, md5, size, check)
        except ContentError as error:
            problem = (
                f"downloaded file has no md5 from the server and fails its content check: "
                f"{error}{_looks_like_a_page(answer.content_type)}"
            )
            fix = (
                "check the base URL in the config (a proxy or login page answering?) and rerun; "
                "if it persists, the file on the server is damaged: report it to the data portal"
            )
            target.unlink()
    raise DownloadError(
        f"{url}: giving up on {target} after {policy.retries + 1} attempts; last problem: "
        f"{problem}. Fix: {fix} (verified files are kept, a partial file resumes)."
    )


def _verified_file(
    url: str, path: Path, md5: str | None, size: int | None, check: ContentCheck | None
) -> VerifiedFile:
    """The record of a file whose size and md5 passed, after its content check if it has no md5."""
    checked = _content(path, md5, size, check)
    return VerifiedFile(
        path, url, path.stat().st_size, md5.lower() if md5 else file_md5(path), checked
    )


@dataclass(frozen=True)
class FileJob:
    """One file to download: where from, where to, and what the server says it is."""

    url: str
    target: Path
    md5: str | None
    size: int | None


def fetch_all(
    jobs: Sequence[FileJob],
    folder: Path,
    *,
    session: requests.Session | None = None,
    policy: RetryPolicy = RetryPolicy(),
    sleep: Callable[[float], None] = time.sleep,
) -> list[VerifiedFile]:
    """Fetch every job; when some fail, keep the verified ones and raise naming the failures."""
    session = session or requests.Session()
    done, failed = [], []
    for job in jobs:
        try:
            done.append(
                fetch_verified(
                    job.url,
                    job.target,
                    md5=job.md5,
                    size=job.size,
                    session=session,
                    policy=policy,
                    sleep=sleep,
                )
            )
        except DownloadError as error:
            log.error("%s", error)
            failed.append(str(error))
    if failed:
        more = f" ({len(failed) - 1} more in the log)" if len(failed) > 1 else ""
        raise DownloadError(
            f"{folder}: {len(failed)} of {len(jobs)} file(s) not downloaded; the {len(done)} "
            f"verified file(s) are kept there and a rerun fetches only the missing ones. "
            f"First failure{more}: {failed[0]}"
        )
    return done


def verified_table(files: Sequence[VerifiedFile], root: Path) -> pd.DataFrame:
    """The verified files (paths relative to ``root``), written as a download rule's output."""
    rows = [
        {
            "path": f.path.resolve().relative_to(Path(root).resolve()).as_posix(),
            "url": f.url,
            "size": f.size,
            "md5": f.md5,
            "checked": f.checked,
        }
        for f in files
    ]
    return pd.DataFrame(rows, columns=list(VERIFIED_COLUMNS))


def link_files(files: Sequence[VerifiedFile], root: Path, into: Path) -> list[Path]:
    """Symbolic links in ``into`` to verified files under ``root``, in the same layout.

    The downloads stay in ``root`` (download.data_dir), which no rule owns: a failed job loses
    only these links, never a verified file. A relative ``root`` gets relative links, so that
    the project folder can move as a whole.
    """
    root_abs = Path(root).resolve()
    links = []
    for f in files:
        link = Path(into) / f.path.resolve().relative_to(root_abs)
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        source = f.path.resolve()
        link.symlink_to(
            source if Path(root).is_absolute() else os.path.relpath(source, link.parent.resolve())
        )
        links.append(link)
    return links


def unexpected_body(url: str, response: requests.Response, expected: str, setting: str) -> str:
    """The error for a 200 answer that is not what the API sends (a proxy's login page)."""
    content_type = response.headers.get("Content-Type") or "no Content-Type"
    start = " ".join(response.content[:80].decode("utf-8", errors="replace").split())
    page = "html" in content_type.lower() or start.lower().startswith(("<!doctype html", "<html"))
    what = "a web page (a proxy's login page or a wrong base URL)" if page else "something else"
    host = urlsplit(url).netloc
    return (
        f"{url}: expected {expected}, but HTTP {response.status_code} came back with "
        f"{content_type}, starting {start!r}: {what}, not the API. Fix: check download.{setting} "
        f"in the config; behind a proxy, log in to it or set HTTPS_PROXY/NO_PROXY so that "
        f"requests reach {host}, then rerun."
    )


def small_request(
    send: Callable[[], requests.Response],
    url: str,
    fix: str,
    policy: RetryPolicy,
    sleep: Callable[[float], None],
) -> requests.Response:
    """Send a small request with retries on busy statuses; DownloadError naming `fix` otherwise."""
    problem = "no attempt"
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
            raise DownloadError(
                f"{url}: HTTP {response.status_code} ({response.reason}). Fix: {fix}"
            )
        return response
    raise DownloadError(
        f"{url}: giving up after {policy.retries + 1} attempts ({problem}). Fix: check the "
        "network and the base URL in the config; if the server is failing or busy, wait and "
        "rerun."
    )

"""Headless Chromium for the browser tests (the workflow report, the patient report).

Chromium is Debian's `chromium` package, installed with apt-get when missing (as root); where it
cannot be installed, the calling test is skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

# Without these, Chromium tries Google's hosts at start, which a closed network refuses.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def chromium_path() -> str:
    """Debian's Chromium, installed with apt-get if missing; skip with the reason otherwise."""
    found = shutil.which("chromium")
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip("chromium is not installed and installing it needs root and apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    apt = ["apt-get", "-o", "DPkg::Lock::Timeout=120", "-q"]
    install = [*apt, "install", "-y", "--no-install-recommends", "chromium"]
    done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        # A fresh machine may have empty package lists: refresh them once and retry.
        subprocess.run([*apt, "update"], env=env, capture_output=True, text=True, timeout=900)
        done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900)
    found = shutil.which("chromium")
    if found is None:
        pytest.skip(f"apt-get could not install chromium: {done.stderr[-1000:]}")
    return found


def chromium(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium with a fresh profile folder."""
    return subprocess.run(
        [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        timeout=180,
    )

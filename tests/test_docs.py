"""Dotted hccrad names in the documentation resolve to a module or to a name in one."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = ("docs/architecture.md", "README.md", "config/README.md", "resources/pyradiomics/README.md")
DOTTED = re.compile(r"`(hccrad(?:\.[A-Za-z_][A-Za-z0-9_]*)+)")


def resolves(dotted: str) -> bool:
    """Whether the longest importable prefix of ``dotted`` holds the rest as attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:]:
            if not hasattr(found, name):
                return False
            found = getattr(found, name)
        return True
    return False


@pytest.mark.parametrize("page", PAGES)
def test_dotted_hccrad_names_exist(page):
    names = sorted(set(DOTTED.findall((ROOT / page).read_text(encoding="utf-8"))))
    assert names or page != "docs/architecture.md"
    missing = [name for name in names if not resolves(name)]
    assert not missing, f"{page} names what hccrad does not have: {missing}"


def test_a_vanished_name_is_caught():
    assert resolves("hccrad.core.seeding.rng_for")
    assert not resolves("hccrad.core.seeding.no_such_function")
    assert not resolves("hccrad.no_such_module")

"""The mask's label values (docs/architecture.md): 0 background, 1 liver, 2 tumour.

A module of its own so that code which only reads masks (the deep-learning path) need not
import hccrad.imaging and with it SimpleITK.
"""

from __future__ import annotations

BACKGROUND_LABEL = 0
LIVER_LABEL = 1
TUMOUR_LABEL = 2
ALLOWED_LABELS = frozenset({BACKGROUND_LABEL, LIVER_LABEL, TUMOUR_LABEL})

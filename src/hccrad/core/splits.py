"""The names of the sheet's splits, defined once for every stage.

Standard library only: the Snakefile's parse may import it (hccrad.core.plan's rule).
"""

from __future__ import annotations

SPLIT_COLUMN = "split"
TRAIN = "train"
INTERNAL_TEST = "internal_test"
EXTERNAL = "external"  # the prefix of external_<centre>, and the pooled external cohort
RADIOGENOMICS = "radiogenomics"

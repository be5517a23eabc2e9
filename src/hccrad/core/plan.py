"""What the Snakefile's parse needs from hccrad: patient ids, image shards, table names, checks.

The standard library only, on purpose: every job of a cluster run parses the Snakefile again,
and `snakemake --lint` should run where only Snakemake is installed. The analysis modules that
own these names (simulate, evaluate, survival, radiogenomics) import them from here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# The tables of evaluate_predictions, one TSV each (the workflow's outputs and targets).
EVALUATION_TABLES: tuple[str, ...] = (
    "auc",
    "threshold_metrics",
    "delong",
    "calibration",
    "calibration_curves",
    "calibration_loess",
    "decision_curves",
    "roc_curves",
)
# The tables of the survival analysis, one TSV each (the workflow's outputs and targets).
SURVIVAL_TABLES: tuple[str, ...] = (
    "cutoffs",
    "risk_groups",
    "km_curves",
    "median_survival",
    "numbers_at_risk",
    "logrank",
    "cox",
    "concordance",
    "td_auc",
)
# The tables of a repeated cross-validation (hccrad.reporting.crossval), one TSV each.
CROSSVAL_TABLES: tuple[str, ...] = (
    "auc",
    "auc_repeats",
    "comparisons",
    "comparisons_repeats",
    "threshold_metrics",
    "calibration",
    "calibration_curves",
    "calibration_loess",
    "decision_curves",
    "roc_curves",
    "logrank",
    "cox",
    "km_curves",
    "numbers_at_risk",
    "risk_groups",
)


def patient_ids(centres: Sequence[Mapping[str, Any]]) -> list[str]:
    """Stable patient ids for a response cohort: centre letter and a running number."""
    return [f"{c['name']}-{i:04d}" for c in centres for i in range(1, c["n_patients"] + 1)]


def tcga_like_ids(n_patients: int, tss_code: str) -> list[str]:
    """TCGA-style patient barcodes (TCGA-<TSS>-<participant>) for the radiogenomics cohort."""
    # The TSS code is configurable and defaults to one TCGA never issued, so that simulated
    # barcodes can never be mistaken for real participants.
    return [f"TCGA-{tss_code}-A{i:03d}" for i in range(1, n_patients + 1)]


def shard_members(ids: Sequence[str], n_shards: int, shard: int) -> list[str]:
    """Patients of one image shard (1-based), dealt round-robin so every shard mixes centres."""
    return list(ids[shard - 1 :: n_shards])


class RadiogenomicsInputError(ValueError):
    """Imaging and RNA-seq tables that cannot be analysed together; the message says why."""


def check_radiogenomics_settings(settings: Mapping[str, Any], endpoints: Sequence[str]) -> None:
    """Raise for radiogenomics settings that the config schema cannot cross-check."""
    if settings["endpoint"] not in endpoints:
        raise RadiogenomicsInputError(
            f"radiogenomics.endpoint = {settings['endpoint']!r} is not in endpoints "
            f"{list(endpoints)}: no DLTR network is trained for it. Pick one of them."
        )
    features = settings["features"]
    if settings["enrichment"]["ranking"] == "dltr_score" and not features["include_dltr_score"]:
        raise RadiogenomicsInputError(
            "radiogenomics.enrichment.ranking = 'dltr_score' needs "
            "radiogenomics.features.include_dltr_score: true"
        )
    if (
        features["deep"] == "none"
        and not features["include_dltr_score"]
        and not features["include_radiomics"]
    ):
        raise RadiogenomicsInputError(
            "radiogenomics.features selects no imaging feature: set deep to top_k or all, or "
            "include the DLTR score or radiomics"
        )
    enrichment = settings["enrichment"]
    if enrichment["min_size"] > enrichment["max_size"]:
        raise RadiogenomicsInputError(
            f"radiogenomics.enrichment.min_size ({enrichment['min_size']}) exceeds max_size "
            f"({enrichment['max_size']})"
        )

"""The ``models`` config section (ModelSettings), the radiomics variants and per-model seeds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from hccrad.cohorts.sheet import CLINICAL_COVARIATES
from hccrad.core.config import known_keys
from hccrad.core.seeding import rng_for

ClassifierKind = Literal["xgboost", "lasso", "ridge"]
# The radiomics models: one LASSO selection, three classifiers on it.
RADIOMICS_VARIANTS: dict[str, ClassifierKind] = {
    "radiomics": "xgboost",
    "radiomics_lasso": "lasso",
    "radiomics_ridge": "ridge",
}


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class ModelSettings:
    """The ``models`` section of the config; every key is optional."""

    clinical_covariates: tuple[str, ...] = CLINICAL_COVARIATES
    screening_p: float = 0.1
    cv_folds: int = 5
    n_cs: int = 20
    fallback_top_k: int = 5
    xgboost: Mapping[str, Any] = field(
        default_factory=lambda: {
            "n_estimators": 200,
            "max_depth": 2,
            "learning_rate": 0.05,
            "subsample": 0.8,
            "colsample_bytree": 0.8,
        }
    )
    mlp_hidden_layers: tuple[int, ...] = (16,)
    mlp_alphas: tuple[float, ...] = (0.1, 1.0, 10.0)
    dltr_score_column: str = "dltr_score"
    dlr_radiomics_model: str = "radiomics"


def model_settings(cfg: Mapping[str, Any] | None) -> ModelSettings:
    """ModelSettings from the config's ``models`` section, rejecting unknown keys."""
    cfg = known_keys(ModelSettings, cfg or {}, "models")
    for key in ("clinical_covariates", "mlp_hidden_layers", "mlp_alphas"):
        if key in cfg:
            cfg[key] = tuple(cfg[key])
    if "xgboost" in cfg:
        cfg["xgboost"] = {**ModelSettings().xgboost, **cfg["xgboost"]}
    settings = ModelSettings(**cfg)
    if settings.dlr_radiomics_model not in RADIOMICS_VARIANTS:
        raise ValueError(
            f"models config: dlr_radiomics_model must be one of {sorted(RADIOMICS_VARIANTS)}, "
            f"got {settings.dlr_radiomics_model!r}"
        )
    return settings


# Endpoints whose 1 is the favourable outcome (objective response; no progression by the TTP
# threshold): a higher predicted probability means a lower risk. `proliferative` (1 = the
# aggressive subtype) is the other way round.
FAVOURABLE_ENDPOINTS = frozenset({"response", "ttp_response"})


def higher_score_riskier(endpoint: str) -> bool:
    """Whether a higher score of this endpoint's models means a higher risk (shorter survival)."""
    return endpoint not in FAVOURABLE_ENDPOINTS


def model_seed(seed: int, endpoint: str, model: str) -> int:
    """A random_state for one model of one endpoint, derived from the config seed."""
    return int(rng_for(seed, "models", endpoint, model).integers(2**31 - 1))

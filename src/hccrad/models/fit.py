"""Every response model of an endpoint fitted on the train split, scored on every split, tabled.

Every model is fitted on the ``train`` split only, and every data-driven step (imputation,
screening, scaling, penalty choice, feature selection) happens inside its
``fit``; scoring the other splits only applies what training learnt. Models, by name:

- ``clinical``: univariable logistic screening (statsmodels; likelihood-ratio P per covariate,
  so a categorical covariate is one test), then a multivariable logistic model on the
  covariates with P < ``screening_p``: the studies' "independent clinical predictors".
- ``radiomics`` (LASSO -> XGBoost), ``radiomics_lasso`` (the L1-logistic itself) and
  ``radiomics_ridge`` (ridge logistic on the LASSO selection), on the radiomics table.
- ``DLTR``: the deep model's score column (``dltr_score``, a probability) as given, or, when the
  deep table only has ``deep_*`` features, an L1-logistic signature of them.
- ``DLTR_MLP``: an MLP fusing the DLTR score (or the deep features) with the clinical
  covariates that the clinical model kept, its L2 penalty chosen by inner CV.
- ``DLR``: a logistic model on the radiomics and DLTR scores. It is fitted on out-of-fold
  training scores (cross_val_predict), because in-sample scores of flexible models are
  optimistic and would teach the combiner to trust them too much.

Scores are probabilities of outcome 1; each model's Youden threshold comes from training data.
The estimators live in hccrad.models.clinical, .radiomics and .fusion; their inputs in
.inputs and the ``models`` config section in .settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone

from hccrad.models.base import plain
from hccrad.models.clinical import ClinicalLogistic
from hccrad.models.fusion import FusionMLP, ScoreColumn, StackedScore
from hccrad.models.inputs import DEEP, DEEP_PREFIX, RADIOMICS, assemble_inputs, training_outcome
from hccrad.models.radiomics import LassoSignature
from hccrad.models.settings import RADIOMICS_VARIANTS, ModelSettings, model_seed, model_settings
from hccrad.stats.discrimination import youden_threshold

PREDICTION_COLUMNS: tuple[str, ...] = (
    "patient_id",
    "split",
    "centre",
    "endpoint",
    "model",
    "score",
    "outcome",
)


# --------------------------------------------------------------------------- fit and predict


@dataclass
class ResponseModel:
    """A fitted model with the columns it reads and its training Youden threshold."""

    name: str
    endpoint: str
    estimator: Any
    columns: list[str]
    youden_threshold: float = np.nan
    train_patients: list[str] = field(default_factory=list)

    def score(self, inputs: pd.DataFrame) -> pd.Series:
        """Probability of outcome 1 per patient."""
        return pd.Series(
            self.estimator.predict_proba(inputs[self.columns])[:, 1],
            index=inputs.index,
            name=self.name,
        )

    def describe(self) -> dict[str, Any]:
        """What the estimator selected and learnt, with the threshold and training size."""
        return plain(
            {
                "name": self.name,
                "endpoint": self.endpoint,
                "n_train": len(self.train_patients),
                "youden_threshold": self.youden_threshold,
                **self.estimator.describe(),
            }
        )


def build_estimators(
    columns: Mapping[str, list[str]],
    clinical: ClinicalLogistic,
    settings: ModelSettings,
    seed: int,
    endpoint: str,
) -> dict[str, tuple[Any, list[str]]]:
    """Unfitted imaging estimators and their input columns, for the tables available."""
    estimators: dict[str, tuple[Any, list[str]]] = {}
    if RADIOMICS in columns:
        for name, kind in RADIOMICS_VARIANTS.items():
            estimators[name] = (
                LassoSignature(
                    classifier=kind,
                    cv_folds=settings.cv_folds,
                    n_cs=settings.n_cs,
                    fallback_top_k=settings.fallback_top_k,
                    xgboost_params=dict(settings.xgboost),
                    # One LASSO fold split shared by the variants: same selection in all three.
                    random_state=model_seed(seed, endpoint, RADIOMICS),
                ),
                columns[RADIOMICS],
            )
    if DEEP in columns:
        score_column = settings.dltr_score_column
        has_score = score_column in columns[DEEP]
        deep_columns = [c for c in columns[DEEP] if c.startswith(DEEP_PREFIX)]
        if not has_score and not deep_columns:
            raise ValueError(
                f"feature table 'deep' has neither {score_column!r} nor {DEEP_PREFIX}* columns"
            )
        dltr_columns = [score_column] if has_score else deep_columns
        dltr = (
            ScoreColumn(score_column)
            if has_score
            else LassoSignature(
                classifier="lasso",
                cv_folds=settings.cv_folds,
                n_cs=settings.n_cs,
                fallback_top_k=settings.fallback_top_k,
                random_state=model_seed(seed, endpoint, "DLTR"),
            )
        )
        estimators["DLTR"] = (dltr, dltr_columns)
        estimators["DLTR_MLP"] = (
            FusionMLP(
                imaging_columns=dltr_columns,
                clinical_covariates=clinical.selected_,
                hidden_layer_sizes=settings.mlp_hidden_layers,
                alphas=settings.mlp_alphas,
                cv_folds=settings.cv_folds,
                random_state=model_seed(seed, endpoint, "DLTR_MLP"),
            ),
            dltr_columns + list(clinical.selected_),
        )
    if RADIOMICS in columns and DEEP in columns:
        radiomics, radiomics_columns = estimators[settings.dlr_radiomics_model]
        dltr, dltr_columns = estimators["DLTR"]
        estimators["DLR"] = (
            StackedScore(
                bases=[
                    (settings.dlr_radiomics_model, clone(radiomics), radiomics_columns),
                    ("DLTR", clone(dltr), dltr_columns),
                ],
                cv_folds=settings.cv_folds,
                random_state=model_seed(seed, endpoint, "DLR"),
            ),
            radiomics_columns + dltr_columns,
        )
    return estimators


def _require_cv_classes(y: pd.Series, endpoint: str, cv_folds: int) -> None:
    """ValueError when the rarer training class has fewer patients than CV folds."""
    # Stratified CV (LASSO penalty, MLP penalty, DLR stacking) gives every fold one patient of
    # each class at least; with fewer, a fold trains on a single class and scikit-learn stops
    # with a message that names neither the endpoint nor the fix.
    n_positive = int(y.sum())
    counts = {1: n_positive, 0: len(y) - n_positive}
    rare = min(counts, key=lambda label: (counts[label], label))
    if counts[rare] >= cv_folds:
        return
    fix = (
        f"lower models.cv_folds to {counts[rare]} or add training patients with {endpoint} = {rare}"
        if counts[rare] >= 2
        else f"add training patients with {endpoint} = {rare}"
    )
    raise ValueError(
        f"endpoint {endpoint!r} in split 'train': {counts[1]} patient(s) with {endpoint} = 1 "
        f"and {counts[0]} with 0; models.cv_folds = {cv_folds} needs at least {cv_folds} of "
        f"each class. Fix: {fix}."
    )


def fit_all(
    sheet: pd.DataFrame,
    features: Mapping[str, pd.DataFrame],
    endpoint: str,
    seed: int,
    cfg: Mapping[str, Any] | None = None,
) -> dict[str, ResponseModel]:
    """Fit every model that the available tables allow on the train split, with thresholds.

    ``features`` maps ``radiomics`` and/or ``deep`` to patients x features tables covering
    every patient of ``sheet``; ``cfg`` is the config's ``models`` section (or None).
    """
    settings = model_settings(cfg)
    inputs, columns = assemble_inputs(sheet, features)
    y = training_outcome(sheet, endpoint)
    if columns:  # every imaging model tunes or stacks by CV; the clinical model alone does not
        _require_cv_classes(y, endpoint, settings.cv_folds)
    train = inputs.loc[y.index]
    clinical = ClinicalLogistic(settings.clinical_covariates, settings.screening_p).fit(train, y)
    fitted = {"clinical": (clinical, list(settings.clinical_covariates))}
    for name, (estimator, used) in build_estimators(
        columns, clinical, settings, seed, endpoint
    ).items():
        fitted[name] = (estimator.fit(train[used], y.to_numpy()), used)
    models = {}
    for name, (estimator, used) in fitted.items():
        model = ResponseModel(name, endpoint, estimator, used, train_patients=list(y.index))
        # The DLR combiner's in-sample inputs come from bases fitted on the same rows; its
        # threshold is set on the out-of-fold scores it was fitted on, as new patients get.
        oof = getattr(estimator, "oof_training_scores_", None)
        train_scores = pd.Series(oof, index=y.index) if oof is not None else model.score(train)
        model.youden_threshold = youden_threshold(
            y, train_scores, context=f"endpoint {endpoint!r} model {name} in split 'train'"
        )
        models[name] = model
    return models


def predict_all(
    models: Mapping[str, ResponseModel],
    sheet: pd.DataFrame,
    features: Mapping[str, pd.DataFrame],
) -> pd.DataFrame:
    """Long table of scores: one row per patient and model, every split of the sheet."""
    inputs, _ = assemble_inputs(sheet, features)
    frames = []
    for name, model in models.items():
        outcome = (
            pd.to_numeric(sheet[model.endpoint], errors="coerce").to_numpy(dtype=float)
            if model.endpoint in sheet
            else np.full(len(sheet), np.nan)
        )
        frames.append(
            pd.DataFrame(
                {
                    "patient_id": sheet.index,
                    "split": sheet["split"].to_numpy(),
                    "centre": sheet["centre"].to_numpy(),
                    "endpoint": model.endpoint,
                    "model": name,
                    "score": model.score(inputs).to_numpy(),
                    "outcome": outcome,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)[list(PREDICTION_COLUMNS)]


# --------------------------------------------------------------------------- tables


def thresholds_table(models: Mapping[str, ResponseModel]) -> pd.DataFrame:
    """Training Youden threshold per model (a patient is called a responder at score >= it)."""
    return pd.DataFrame(
        [
            {"endpoint": m.endpoint, "model": name, "youden_threshold": m.youden_threshold}
            for name, m in models.items()
        ]
    )


def odds_ratio_tables(model: ResponseModel) -> pd.DataFrame:
    """The clinical model's univariable and multivariable OR tables, stacked with a step column."""
    estimator = model.estimator
    if not isinstance(estimator, ClinicalLogistic):
        raise ValueError(f"model {model.name!r} is not the clinical logistic model")
    return pd.concat(
        [
            estimator.univariable_.assign(step="univariable"),
            estimator.multivariable_.assign(step="multivariable", selected=True),
        ],
        ignore_index=True,
    ).assign(endpoint=model.endpoint)


def describe_all(models: Mapping[str, ResponseModel]) -> dict[str, Any]:
    """Every model's describe(), JSON-ready."""
    return {name: model.describe() for name, model in models.items()}


def selected_features_table(models: Mapping[str, ResponseModel]) -> pd.DataFrame:
    """The predictors each model selected on training: clinical covariates and LASSO features."""
    rows = []
    for name, model in models.items():
        estimator = model.estimator
        if isinstance(estimator, ClinicalLogistic):
            table = estimator.multivariable_
            for covariate in estimator.selected_:
                terms = table[table["covariate"] == covariate]
                rows.append(
                    {
                        "model": name,
                        "feature": covariate,
                        "selection": "univariable screening + multivariable logistic",
                        "coefficient": float(terms["coefficient"].iloc[0])
                        if len(terms) == 1
                        else np.nan,
                    }
                )
        elif isinstance(estimator, LassoSignature):
            coefficients = estimator.lasso_.coef_[0, estimator.selected_index_]
            for feature, coefficient in zip(
                estimator.selected_features_, coefficients, strict=True
            ):
                rows.append(
                    {
                        "model": name,
                        "feature": feature,
                        "selection": estimator.selection_method_,
                        "coefficient": float(coefficient),
                    }
                )
    table = pd.DataFrame(rows, columns=["model", "feature", "selection", "coefficient"])
    counts = table.groupby("model", sort=False)["feature"].transform("size")
    return table.assign(n_selected=counts)

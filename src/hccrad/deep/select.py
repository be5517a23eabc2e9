"""Architecture selection: paired CV of every architecture on the training split, then a refit.

The procedure, and what the cross-validation estimates:

1. Architecture selection sees the training split only (`training_labels` refuses any other
   row). Stratified k-fold CV over the training patients, with the same folds for every
   architecture so that the comparison is paired. Inside each fold the fitting patients are split
   again (stratified, seeded) into an inner training and an inner validation part: the network
   trains on the first with class-weighted BCE, stops when the validation AUC (ties: the lower
   validation loss) has not improved for `patience` epochs and keeps the weights of its best
   epoch (``early_stopping=False``: no inner split; a fixed cosine schedule over all the fitting
   patients, keeping the last epoch). The fold AUC is that network's AUC on the held-out fold.
2. The winner has the highest mean fold AUC. Ties (equal to 3 decimals, i.e. below what 20-50
   patients per fold can resolve) go to the lower SD over folds, then to fewer parameters, then
   to the order of `ARCHITECTURES`.
3. The winner is refitted on the whole training split by the same procedure (inner split and
   early stopping). A refit, not an ensemble of the fold networks: CV estimates the performance of
   the *procedure*, and the refit is that procedure applied to all training patients; and one
   network gives one deep-feature space and one Grad-CAM per patient, which the radiogenomic
   correlation and the figures need (k fold networks are k unrelated feature spaces that cannot
   be averaged).
4. Internal-test and external patients are only ever predicted (`predict_scores`,
   `deep_features`, `grad_cam`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

from hccrad.deep.config import ARCHITECTURES, ENSEMBLES, DeepConfig, seed_for
from hccrad.deep.crops import CropSet
from hccrad.deep.networks import DeepModel, count_parameters
from hccrad.deep.predict import SCORE_NAME, predict_scores
from hccrad.deep.train import auc_or_nan, fit, fit_model, training_labels

logger = logging.getLogger(__name__)

# n_train: patients a fold's network is fitted on (inner training + inner validation); n_val:
# the held-out fold that gives the fold AUC; n_inner_val: the early-stopping part of n_train.
SELECTION_COLUMNS: tuple[str, ...] = (
    "architecture",
    "fold",
    "auc",
    "n_train",
    "n_val",
    "epochs",
    "best_epoch",
    "n_inner_val",
    "n_parameters",
    "seconds",
)


@dataclass
class Selection:
    """Architecture selection: fold table, summary, winner, its refit and out-of-fold scores."""

    table: pd.DataFrame
    summary: pd.DataFrame
    winner: str
    model: DeepModel
    # The winner's held-out-fold score of every training patient (index patient_id): what a
    # downstream model fitted on training rows must see, as the refit's in-sample scores are
    # optimistic.
    out_of_fold: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    # The winner's network of each CV fold (fold order), kept for the fold ensemble.
    fold_models: tuple[DeepModel, ...] = ()

    def ensemble_members(self, how: str) -> tuple[DeepModel, ...]:
        """The networks whose mean probability is the DLTR score (see DeepConfig.ensemble)."""
        if how not in ENSEMBLES:
            raise ValueError(f"ensemble must be one of {ENSEMBLES}, not {how!r}")
        return (self.model,) if how == "refit" else (*self.fold_models, self.model)


def cross_validate(
    train_sheet: pd.DataFrame, crops: CropSet, config: DeepConfig, *, endpoint: str = "response"
) -> pd.DataFrame:
    """Stratified k-fold CV of every architecture on the training split; one row per fold."""
    return cross_validate_networks(train_sheet, crops, config, endpoint=endpoint)[0]


def cross_validate_networks(
    train_sheet: pd.DataFrame, crops: CropSet, config: DeepConfig, *, endpoint: str = "response"
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, list[DeepModel]]]:
    """The fold table, every held-out score and the fold networks of each architecture."""
    labels = training_labels(train_sheet, endpoint)
    crops = crops.subset(labels.index)
    folds = StratifiedKFold(
        n_splits=config.folds, shuffle=True, random_state=seed_for(config.seed, "folds")
    )
    # The same folds for every architecture: a paired comparison.
    splits = list(folds.split(labels.index.to_numpy(), labels.to_numpy()))
    rows = []
    held_out = []
    networks: dict[str, list[DeepModel]] = {}
    for architecture in config.architectures:
        for fold, (fit_rows, held_rows) in enumerate(splits, start=1):
            started = time.perf_counter()
            fit_labels, held_labels = labels.iloc[fit_rows], labels.iloc[held_rows]
            model = fit(architecture, fit_labels, crops, config, f"fold {fold}")
            networks.setdefault(architecture, []).append(model)
            held_scores = predict_scores(
                model, crops.subset(held_labels.index), device=config.device
            )
            held_out.append(
                pd.DataFrame(
                    {
                        "architecture": architecture,
                        "fold": fold,
                        "patient_id": held_scores.index,
                        SCORE_NAME: held_scores.to_numpy(),
                    }
                )
            )
            rows.append(
                {
                    "architecture": architecture,
                    "fold": fold,
                    "auc": auc_or_nan(
                        held_labels.loc[held_scores.index].to_numpy(), held_scores.to_numpy()
                    ),
                    "n_train": len(fit_labels),
                    "n_val": len(held_labels),
                    "epochs": model.epochs,
                    "best_epoch": model.best_epoch,
                    "n_inner_val": model.n_validation,
                    "n_parameters": count_parameters(model.network),
                    "seconds": round(time.perf_counter() - started, 1),
                }
            )
            logger.info("%s fold %d: AUC %.3f", architecture, fold, rows[-1]["auc"])
    return pd.DataFrame(rows, columns=list(SELECTION_COLUMNS)), pd.concat(held_out), networks


def selection_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and SD of the fold AUCs per architecture, ranked by the winner rule (rank 1 wins)."""
    summary = table.groupby("architecture", sort=False).agg(
        mean_auc=("auc", "mean"),
        sd_auc=("auc", "std"),
        n_folds=("auc", "size"),
        n_parameters=("n_parameters", "first"),
    )
    summary["order"] = [
        ARCHITECTURES.index(a) if a in ARCHITECTURES else len(ARCHITECTURES) for a in summary.index
    ]
    # Ties at 3 decimals go to the steadier (lower SD), then the smaller, then the listed first.
    summary["rounded"] = summary["mean_auc"].round(3)
    summary = summary.sort_values(
        ["rounded", "sd_auc", "n_parameters", "order"],
        ascending=[False, True, True, True],
        na_position="last",
    )
    summary["rank"] = np.arange(1, len(summary) + 1)
    return summary.drop(columns=["order", "rounded"]).reset_index()


def choose_winner(table: pd.DataFrame) -> str:
    """The architecture with the best mean CV AUC (ties: lower SD, fewer parameters, order)."""
    return str(selection_summary(table)["architecture"].iloc[0])


def select_and_refit(
    train_sheet: pd.DataFrame, crops: CropSet, config: DeepConfig, *, endpoint: str = "response"
) -> Selection:
    """Cross-validate every architecture on the training split, then refit the winner on it."""
    table, held_out, networks = cross_validate_networks(
        train_sheet, crops, config, endpoint=endpoint
    )
    winner = choose_winner(table)
    logger.info("selected %s; refitting on the whole training split", winner)
    model = fit_model(train_sheet, crops, config, winner, endpoint=endpoint)
    out_of_fold = held_out.loc[held_out["architecture"] == winner].set_index("patient_id")
    return Selection(
        table,
        selection_summary(table),
        winner,
        model,
        out_of_fold[SCORE_NAME].rename(SCORE_NAME),
        tuple(networks[winner]),
    )

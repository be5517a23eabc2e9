"""How DLTR_MLP's fusion of the DLTR score with the clinical covariates should be fitted.

DLTR_MLP joins the DLTR score with the clinical model's selected covariates. Whether a way of
fitting that fusion helps cannot be judged on the one default cohort (its clinical model sits
at the 4th percentile of draws for response: oracle_replicates.md), nor by running the networks
hundreds of times. This draws the default response cohort again and again (the simulation
alone, seconds per draw) and gives each draw a surrogate DLTR score: the imaging part of the
simulation's own linear predictor (the planted trait effects), standardised, plus Gaussian
noise, through a logistic link. Noise SD 1 gives a surrogate about as good as the workflow's
response DLTR over draws (cohort_draws.md), noise SD 2 a weaker one.

On each draw's training split, with the workflow's clinical model choosing the covariates, it
fits each fusion candidate and reports the external AUC (mean, SD over draws), how often the
fusion beats the better of its two inputs, and its training-split CV AUC (what the workflow
itself can see). The candidates:

- ``adam, early stopping``: sklearn MLPClassifier, Adam, L2 penalty 0.01, early stopping on a
  stratified 20% inner split (scored by accuracy), as DLTR_MLP was fitted up to 2026-11-25;
- ``L-BFGS, alpha by CV (DLTR_MLP now)``: hccrad.models.fusion.FusionMLP, the same network trained
  to convergence by L-BFGS, its L2 penalty chosen from the config's ``mlp_alphas`` by inner CV
  log loss on the training split;
- ``L-BFGS bag``: ten such networks from different initial weights, averaged;
- ``penalised logistic``: a logistic model on the same inputs, L2 penalty by inner CV (the
  linear reference).

``.venv/bin/python studies/fusion_replicates.py --replicates 100`` from the repository root.
"""

from __future__ import annotations

import argparse
import datetime
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from oracle_ceiling import write_report
from oracle_replicates import mean_sd
from scipy.special import expit
from sklearn.base import clone
from sklearn.ensemble import BaggingClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, cross_val_predict
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from tqdm import tqdm

from hccrad.cohorts.simulate import LATENT_PREFIX, TRAITS, simulate_cohort
from hccrad.core.config import simulated_cohorts
from hccrad.core.seeding import rng_for
from hccrad.models.base import cv_folds, neg_log_loss
from hccrad.models.clinical import ClinicalLogistic
from hccrad.models.fusion import FusionMLP
from hccrad.models.settings import ModelSettings, model_settings

REPORT = Path(__file__).with_suffix(".md")
SCORE = "dltr_score"
CV_SUFFIX = " (training CV)"


def arguments() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("config/config.yaml"))
    parser.add_argument("--cohort", default="sim_tace")
    parser.add_argument("--endpoints", nargs="+", default=["response", "proliferative"])
    parser.add_argument("--replicates", type=int, default=100)
    parser.add_argument("--noise", type=float, nargs="+", default=[1.0, 2.0])
    parser.add_argument(
        "--cv-draws",
        type=int,
        default=20,
        help="draws (the first ones) on which the training-split CV AUC is computed too",
    )
    parser.add_argument("--output", type=Path, default=REPORT)
    return parser.parse_args()


def surrogate_score(
    latent: pd.DataFrame, effects: Mapping[str, float], noise_sd: float, rng: np.random.Generator
) -> pd.Series:
    """expit(standardised imaging part of the true linear predictor + noise)."""
    imaging = sum(
        effect * latent[f"{LATENT_PREFIX}{name}"]
        for name, effect in effects.items()
        if name in TRAITS
    )
    signal = (imaging - imaging.mean()) / imaging.std()
    return pd.Series(
        expit(signal + noise_sd * rng.standard_normal(len(latent))), index=latent.index, name=SCORE
    )


class EarlyStoppedFusion(FusionMLP):
    """DLTR_MLP as fitted up to 2026-11-25: Adam, early stopping on a 20% inner split."""

    def _fit_network(self, inputs: np.ndarray, y: np.ndarray) -> Pipeline:
        """Scaler and MLP, stopped at the best validation accuracy (sklearn's criterion)."""
        mlp = MLPClassifier(
            hidden_layer_sizes=tuple(self.hidden_layer_sizes),
            alpha=0.01,
            early_stopping=True,
            validation_fraction=0.2,
            n_iter_no_change=20,
            max_iter=2000,
            random_state=self.random_state,
        )
        return make_pipeline(StandardScaler(), mlp).fit(inputs, y)


class BaggedFusion(FusionMLP):
    """Ten L-BFGS networks from different initial weights at the CV-chosen penalty, averaged."""

    def _fit_network(self, inputs: np.ndarray, y: np.ndarray) -> Pipeline:
        """The workflow's penalty search, then a bag of networks at the chosen penalty."""
        best = super()._fit_network(inputs, y)
        bag = BaggingClassifier(
            clone(best[-1]), n_estimators=10, bootstrap=False, random_state=self.random_state
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return make_pipeline(StandardScaler(), bag).fit(inputs, y)


class LogisticFusion(FusionMLP):
    """A logistic model on the same inputs, its L2 penalty (C = 1 / alpha) by inner CV."""

    def _fit_network(self, inputs: np.ndarray, y: np.ndarray) -> Pipeline:
        """Scaler and ridge logistic with the C of the best inner-CV log loss."""
        search = GridSearchCV(
            make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)),
            {"logisticregression__C": [1.0 / a for a in self.alphas]},
            scoring=neg_log_loss,
            cv=cv_folds(self.cv_folds, self.random_state),
        )
        return search.fit(inputs, y).best_estimator_


def candidates(
    covariates: list[str], settings: ModelSettings, random_state: int
) -> dict[str, Callable[[], FusionMLP]]:
    """Unfitted fusion estimators by name (factories, so each fit starts afresh)."""
    common = {
        "imaging_columns": [SCORE],
        "clinical_covariates": covariates,
        "hidden_layer_sizes": settings.mlp_hidden_layers,
        "alphas": settings.mlp_alphas,
        "cv_folds": settings.cv_folds,
        "random_state": random_state,
    }
    return {
        "adam, early stopping": lambda: EarlyStoppedFusion(**common),
        "L-BFGS, alpha by CV (DLTR_MLP now)": lambda: FusionMLP(**common),
        "L-BFGS bag": lambda: BaggedFusion(**common),
        "penalised logistic": lambda: LogisticFusion(**common),
    }


def replicate_aucs(
    cohort_cfg: Mapping[str, Any],
    seed: int,
    endpoints: list[str],
    models_cfg: Mapping[str, Any],
    noise_levels: list[float],
    with_cv: bool,
) -> list[dict[str, Any]]:
    """External and training-CV AUCs of the inputs and every fusion candidate, per endpoint."""
    drawn = simulate_cohort(cohort_cfg, seed)
    sheet, latent = drawn["sheet"], drawn["latent"]
    train = (sheet["split"] == "train").to_numpy()
    external = sheet["split"].str.startswith("external").to_numpy()
    settings = model_settings(models_cfg)
    rows = []
    for endpoint in endpoints:
        y = sheet[endpoint].astype(int).to_numpy()
        clinical = ClinicalLogistic(settings.clinical_covariates, settings.screening_p)
        clinical.fit(sheet.loc[train], y[train])
        clinical_auc = roc_auc_score(y[external], clinical.predict_proba(sheet[external])[:, 1])
        for noise_sd in noise_levels:
            rng = rng_for(seed, "fusion_replicates", endpoint, str(noise_sd))
            effects = drawn["truth"]["endpoints"][endpoint]["effects_log_odds"]
            table = sheet.assign(**{SCORE: surrogate_score(latent, effects, noise_sd, rng)})
            row = {
                "endpoint": endpoint,
                "noise SD": noise_sd,
                "seed": seed,
                "clinical": clinical_auc,
                "DLTR": roc_auc_score(y[external], table.loc[external, SCORE]),
            }
            folds = cv_folds(settings.cv_folds, seed)
            for name, make in candidates(clinical.selected_, settings, seed).items():
                fitted = make().fit(table[train], y[train])
                row[name] = roc_auc_score(y[external], fitted.predict_proba(table[external])[:, 1])
                if not with_cv:
                    continue
                oof = cross_val_predict(
                    make(), table[train], y[train], cv=folds, method="predict_proba"
                )[:, 1]
                row[f"{name}{CV_SUFFIX}"] = roc_auc_score(y[train], oof)
            rows.append(row)
    return rows


def summary(table: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """Per endpoint and noise: mean (SD) external AUC, wins over both inputs, training CV AUC."""
    out = []
    for (endpoint, noise_sd), group in table.groupby(["endpoint", "noise SD"], sort=False):
        best_input = group[["clinical", "DLTR"]].max(axis=1)
        for name in ["clinical", "DLTR", *names]:
            fusion = name in names
            out.append(
                {
                    "endpoint": endpoint,
                    "surrogate noise SD": noise_sd,
                    "model": name,
                    "external AUC, mean (SD)": mean_sd(group[name]),
                    "draws above both inputs": (
                        f"{(group[name] > best_input).mean():.0%}" if fusion else ""
                    ),
                    "training CV AUC, mean (SD)": (
                        mean_sd(group[f"{name}{CV_SUFFIX}"])
                        if fusion and f"{name}{CV_SUFFIX}" in group
                        else ""
                    ),
                }
            )
    return pd.DataFrame(out)


def main() -> None:
    """Draw the replicates, fit the candidates on each and write the summary table."""
    args = arguments()
    config = yaml.safe_load(args.config.read_text())
    cohort_cfg = simulated_cohorts(config)[args.cohort]
    rows = []
    for seed in tqdm(range(1, args.replicates + 1), desc="draws"):
        rows.extend(
            replicate_aucs(
                cohort_cfg,
                seed,
                args.endpoints,
                config["models"],
                args.noise,
                seed <= args.cv_draws,
            )
        )
    table = pd.DataFrame(rows)
    # The candidates' names, in their order; --cv-draws 0 leaves no CV columns to find them by.
    names = list(candidates([], model_settings(config["models"]), 0))
    write_report(
        args.output,
        [
            "# Fitting DLTR_MLP's fusion: replicates of the simulated cohort",
            "",
            f"`studies/fusion_replicates.py`, {datetime.date.today().isoformat()}: "
            f"{args.replicates} draws (seeds 1-{args.replicates}) of `{args.cohort}` from "
            f"{args.config}, each with a surrogate DLTR score (see the script's docstring). "
            "External AUCs over the draws; the training CV AUC is out-of-fold on the training "
            f"split ({model_settings(config['models']).cv_folds} folds), on the first "
            f"{min(args.cv_draws, args.replicates)} draws.",
            "",
            summary(table, names).to_markdown(index=False),
        ],
    )


if __name__ == "__main__":
    main()

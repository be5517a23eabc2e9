"""How often an imaging model can beat the clinical model externally, over simulated replicates.

oracle_ceiling.py reads the one cohort that the default run drew. This draws the default
response cohort again and again (the simulation alone, no image: a second per replicate), each
time with another seed and, optionally, with a larger development centre, and fits on each
draw's training split:

- the workflow's clinical model (hccrad.models.clinical.ClinicalLogistic with the config's
  covariates and screening P), on the simulated clinical table, exactly as the default run fits it;
- a logistic model on the latent imaging traits: what an imaging model would reach if it read
  every trait without noise, i.e. the ceiling of DLTR, radiomics or any other model of the
  images (a model of the images has to measure the traits through noise, partial volume and
  the centres' acquisitions, so it can only fall short of this).

It reports, per endpoint and development-centre size, the external AUCs' mean and SD over the
replicates and how often the ceiling lies above the clinical model. Nothing from it enters the
workflow; it says what the default cohort's size allows any imaging model to show.

``.venv/bin/python studies/oracle_replicates.py --replicates 200 --development 100 200 400``
from the repository root (about a minute per 100 replicates and size on one core).
"""

from __future__ import annotations

import argparse
import copy
import datetime
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from oracle_ceiling import fit_latent_logistic, latent_trait_columns, write_report
from sklearn.metrics import roc_auc_score
from tqdm import tqdm

from hccrad.cohorts.simulate import simulate_cohort
from hccrad.core.config import simulated_cohorts
from hccrad.models.clinical import ClinicalLogistic
from hccrad.models.settings import model_settings

REPORT = Path(__file__).with_suffix(".md")
CEILING = "logistic on latent imaging traits"
CLINICAL = "workflow clinical model"


def arguments() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("config/config.yaml"))
    parser.add_argument("--cohort", default="sim_tace")
    parser.add_argument("--endpoints", nargs="+", default=["response", "proliferative"])
    parser.add_argument("--replicates", type=int, default=200)
    parser.add_argument(
        "--development",
        type=int,
        nargs="+",
        default=[100],
        help="patients of the development centre (the default config has 100)",
    )
    parser.add_argument("--output", type=Path, default=REPORT)
    return parser.parse_args()


def with_development_size(cohort_cfg: Mapping[str, Any], n_patients: int) -> dict[str, Any]:
    """The cohort's config with its development centre(s) resized to `n_patients`."""
    resized = copy.deepcopy(dict(cohort_cfg))
    for centre in resized["centres"]:
        if centre["role"] == "development":
            centre["n_patients"] = n_patients
    return resized


def replicate_aucs(
    cohort_cfg: Mapping[str, Any], seed: int, endpoints: list[str], models_cfg: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """External AUC of the clinical model and of the latent-trait ceiling, per endpoint."""
    drawn = simulate_cohort(cohort_cfg, seed)
    sheet, latent = drawn["sheet"], drawn["latent"]
    train = sheet["split"] == "train"
    external = sheet["split"].str.startswith("external")
    traits = latent[latent_trait_columns()]
    settings = model_settings(models_cfg)
    rows = []
    for endpoint in endpoints:
        y = sheet[endpoint].astype(int)
        clinical = ClinicalLogistic(settings.clinical_covariates, settings.screening_p)
        clinical.fit(sheet.loc[train], y[train])
        ceiling = fit_latent_logistic(traits[train], y[train])
        scores = {
            CLINICAL: clinical.predict_proba(sheet.loc[external])[:, 1],
            CEILING: ceiling.decision_function(traits[external]),
        }
        rows.append(
            {
                "endpoint": endpoint,
                "seed": seed,
                "n_train": int(train.sum()),
                "events_train": int(y[train].sum()),
                **{name: roc_auc_score(y[external], s) for name, s in scores.items()},
            }
        )
    return rows


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per endpoint and training size: mean (SD) external AUCs and the ceiling's win rate."""
    grouped = table.assign(margin=table[CEILING] - table[CLINICAL]).groupby(
        ["endpoint", "development patients"], sort=False
    )
    return pd.DataFrame(
        {
            "training patients (mean)": grouped["n_train"].mean().round(0).astype(int),
            "training events (mean)": grouped["events_train"].mean().round(1),
            f"{CLINICAL}, external AUC": grouped[CLINICAL].agg(mean_sd),
            f"{CEILING}, external AUC": grouped[CEILING].agg(mean_sd),
            "ceiling minus clinical": grouped["margin"].agg(mean_sd),
            "replicates with the ceiling above clinical": grouped["margin"].agg(
                lambda m: f"{(m > 0).mean():.0%}"
            ),
        }
    ).reset_index()


def default_draw_ranks(table: pd.DataFrame, reference: list[dict[str, Any]]) -> pd.DataFrame:
    """Where the config seed's own draw lies among the replicates of the default size."""
    rows = []
    for draw in reference:
        replicates = table[
            (table["endpoint"] == draw["endpoint"])
            & (table["development patients"] == draw["development patients"])
        ]
        rows.append(
            {
                "endpoint": draw["endpoint"],
                f"{CLINICAL}, external AUC": _with_rank(draw[CLINICAL], replicates[CLINICAL]),
                f"{CEILING}, external AUC": _with_rank(draw[CEILING], replicates[CEILING]),
                "ceiling minus clinical": _with_rank(
                    draw[CEILING] - draw[CLINICAL], replicates[CEILING] - replicates[CLINICAL]
                ),
            }
        )
    return pd.DataFrame(rows)


def _with_rank(value: float, replicates: pd.Series) -> str:
    """The value and the share of replicates below it."""
    return f"{value:.3f} ({(replicates < value).mean():.0%} of replicates lower)"


def mean_sd(values: pd.Series) -> str:
    """'mean (SD)' to three decimals."""
    return f"{values.mean():.3f} ({values.std(ddof=1):.3f})"


def main() -> None:
    """Draw the replicates, fit both models on each and write the summary table."""
    args = arguments()
    config = yaml.safe_load(args.config.read_text())
    simulated = simulated_cohorts(config)
    if args.cohort not in simulated:
        raise SystemExit(f"no simulate: entry of {args.config} is named {args.cohort!r}")
    rows = []
    for size in args.development:
        cohort_cfg = with_development_size(simulated[args.cohort], size)
        # Seeds 1..R: the config seed's own draw is the default run's (oracle_ceiling.md).
        for seed in tqdm(range(1, args.replicates + 1), desc=f"{size} development patients"):
            for row in replicate_aucs(cohort_cfg, seed, args.endpoints, config["models"]):
                rows.append({"development patients": size, **row})
    replicates = pd.DataFrame(rows)
    # The default run's own draw (the config seed, the configured size) among the replicates.
    configured = sum(
        c["n_patients"] for c in simulated[args.cohort]["centres"] if c["role"] == "development"
    )
    reference = [
        {"development patients": configured, **row}
        for row in replicate_aucs(
            simulated[args.cohort], config["seed"], args.endpoints, config["models"]
        )
    ]
    ranks = (
        [
            "",
            f"The default run's draw (config seed {config['seed']}, {configured} development "
            "patients) among the replicates of its size:",
            "",
            default_draw_ranks(replicates, reference).to_markdown(index=False),
        ]
        if configured in args.development
        else []
    )
    write_report(
        args.output,
        [
            "# Can an imaging model beat the clinical model? Replicates of the simulated cohort",
            "",
            f"`studies/oracle_replicates.py`, {datetime.date.today().isoformat()}: "
            f"{args.replicates} draws (seeds 1-{args.replicates}) of `{args.cohort}` from "
            f"{args.config}, the development centre at each size shown and the external "
            "centres as configured. On each draw's training split: the workflow's clinical "
            "model and a logistic model on the latent imaging traits (the noise-free ceiling of "
            "any imaging model); external AUCs pooled over the external centres.",
            "",
            summary(replicates).to_markdown(index=False),
            *ranks,
            "",
        ],
    )


if __name__ == "__main__":
    main()

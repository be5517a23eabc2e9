"""How well the simulated cohort's endpoints can be predicted at best, from its latent truth.

The simulation knows what the images only show: each patient's latent imaging traits and
clinical factors (results/<cohort>/truth/latent.tsv) and the probability that drew the outcome.
This fits a logistic model on those latent values, on the training split only, and reports its
AUC on the internal test split and the external centres, beside the AUCs of the workflow's
models (results/<cohort>/evaluation/<endpoint>/auc.tsv) when a default run has written them.
A model fitted on the training split's images can only approach the "logistic on latent imaging
traits" row (it has to measure them, through noise and the centres' acquisitions); the "true
... part" rows use the simulation's own effects (config), i.e. what unlimited training data
would learn; the "true probability" row is the ceiling of any model. Writes
studies/oracle_ceiling.md; seconds to run.

``.venv/bin/python studies/oracle_ceiling.py`` from the repository root, after the default
workflow (or at least its simulate_patients and gather_sheet steps) has run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import yaml
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from hccrad.cohorts.simulate import CLINICAL_FACTORS, LATENT_PREFIX, TRAITS, linear_predictor
from hccrad.core.config import simulated_cohorts

REPORT = Path(__file__).with_suffix(".md")
WORKFLOW_MODELS = ("clinical", "radiomics_ridge", "DLTR")


def arguments() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--config", type=Path, default=Path("config/config.yaml"))
    parser.add_argument("--cohort", default="sim_tace")
    parser.add_argument("--endpoints", nargs="+", default=["response", "proliferative"])
    parser.add_argument("--output", type=Path, default=REPORT)
    return parser.parse_args()


def latent_trait_columns() -> list[str]:
    """The latent imaging traits' columns of the truth's latent table."""
    return [f"{LATENT_PREFIX}{trait}" for trait in TRAITS]


def fit_latent_logistic(latent: pd.DataFrame, outcome: pd.Series) -> LogisticRegression:
    """An oracle model: logistic regression on latent values of the training patients."""
    # The latent values are z-scores already: the default L2 penalty treats them alike.
    return LogisticRegression(max_iter=1000).fit(latent, outcome)


def write_report(output: Path, lines: list[str]) -> None:
    """Write the report's lines to `output` and print them."""
    text = "\n".join(lines)
    output.write_text(text)
    print(text)


def latent_sets() -> dict[str, list[str]]:
    """The latent columns each oracle model sees."""
    imaging = latent_trait_columns()
    clinical = [f"{LATENT_PREFIX}{factor}" for factor in CLINICAL_FACTORS]
    return {
        "latent imaging traits": imaging,
        "latent AFP alone": [f"{LATENT_PREFIX}afp"],
        "latent clinical factors": clinical,
        "latent imaging traits and clinical factors": imaging + clinical,
    }


def held_out_parts(cohort: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The internal test split and the external centres pooled."""
    return {
        "internal test": cohort[cohort["split"] == "internal_test"],
        "external": cohort[cohort["split"].str.startswith("external")],
    }


def oracle_rows(
    cohort: pd.DataFrame, endpoint: str, effects: dict[str, float]
) -> list[dict[str, object]]:
    """AUC per held-out part of the true probability, its parts and each latent logistic model."""
    train = cohort[cohort["split"] == "train"]
    parts = held_out_parts(cohort)
    factors = cohort.filter(like=LATENT_PREFIX).rename(columns=lambda c: c[len(LATENT_PREFIX) :])
    imaging = {name: beta for name, beta in effects.items() if name in TRAITS}
    clinical = {name: beta for name, beta in effects.items() if name not in TRAITS}
    scores = {
        "true probability (simulation)": cohort[f"{endpoint}_probability"],
        "true imaging part of the linear predictor": pd.Series(
            linear_predictor(factors, imaging), index=cohort.index
        ),
        "true clinical part of the linear predictor": pd.Series(
            linear_predictor(factors, clinical), index=cohort.index
        ),
    }
    rows = [
        {
            "endpoint": endpoint,
            "model": label,
            **{
                name: roc_auc_score(part[endpoint], score.loc[part.index])
                for name, part in parts.items()
            },
        }
        for label, score in scores.items()
        if label.startswith("true probability") or score.any()
    ]
    for label, columns in latent_sets().items():
        model = fit_latent_logistic(train[columns], train[endpoint])
        rows.append(
            {
                "endpoint": endpoint,
                "model": f"logistic on {label} (training split)",
                **{
                    name: roc_auc_score(part[endpoint], model.decision_function(part[columns]))
                    for name, part in parts.items()
                },
            }
        )
    return rows


def workflow_rows(auc_table: Path, endpoint: str) -> list[dict[str, object]]:
    """The workflow's own models' held-out AUCs, when the default run has written them."""
    if not auc_table.exists():
        return []
    table = pd.read_csv(auc_table, sep="\t").set_index(["model", "cohort"])["auc"]
    return [
        {
            "endpoint": endpoint,
            "model": f"workflow: {model}",
            "internal test": table.get((model, "internal_test"), float("nan")),
            "external": table.get((model, "external"), float("nan")),
        }
        for model in WORKFLOW_MODELS
        if (model, "external") in table.index
    ]


def main() -> None:
    """Write the oracle table."""
    args = arguments()
    config = yaml.safe_load(args.config.read_text())
    root = args.results / args.cohort
    sheet = pd.read_csv(root / "sheet.tsv", sep="\t", index_col="patient_id")
    latent = pd.read_csv(root / "truth" / "latent.tsv", sep="\t", index_col="patient_id")
    missing = sheet.index.difference(latent.index)
    if len(missing):
        raise SystemExit(f"{root / 'truth' / 'latent.tsv'} lacks {len(missing)} sheet patients")
    cohort = sheet[["split", *args.endpoints]].join(latent)
    simulated = simulated_cohorts(config)
    if args.cohort not in simulated:
        raise SystemExit(f"no simulate: entry of {args.config} is named {args.cohort!r}")
    rows = []
    for endpoint in args.endpoints:
        effects = dict(simulated[args.cohort]["endpoints"][endpoint]["effects"])
        rows += oracle_rows(cohort, endpoint, effects)
        rows += workflow_rows(root / "evaluation" / endpoint / "auc.tsv", endpoint)
    table = pd.DataFrame(rows)
    counts = {name: len(part) for name, part in held_out_parts(cohort).items()}
    write_report(
        args.output,
        [
            "# What the simulated cohort allows at best (latent truth against the workflow)",
            "",
            f"`studies/oracle_ceiling.py` on `{root}`: {int((cohort['split'] == 'train').sum())}"
            f" training, {counts['internal test']} internal-test and {counts['external']} "
            "external patients. Oracle models are fitted on the training split's latent values "
            "(no image, no noise); AUCs on the held-out patients.",
            "",
            table.to_markdown(index=False, floatfmt=".3f"),
            "",
        ],
    )


if __name__ == "__main__":
    main()

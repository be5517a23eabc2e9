"""DLTR against the clinical model over several draws of the simulated response cohort.

The default run draws one cohort (the config seed) and trains one DLTR on it; whether DLTR
beats the clinical model there depends on that draw as much as on the method
(studies/oracle_replicates.md: over 200 draws the clinical model's proliferative external
AUC has an SD of 0.08, and the default draw lies near the top of its range). This runs the
workflow itself once per config seed, each in its own working directory (the seed draws the
patients, their images, the splits and the networks' training alike; every other setting is
the config's), up to the DLTR scores of the response cohort, and then fits the workflow's
clinical, DLTR and DLTR_MLP models on each draw (hccrad.models.fit.fit_all, as fit_models does,
without the radiomics table, which no model compared here uses) and scores the external
centres: AUC per model, the paired DeLong test of DLTR against the clinical model, and the
noise-free ceiling (a logistic model on the draw's latent imaging traits, as in
oracle_ceiling.py). Nothing from it enters the workflow.

``.venv/bin/python studies/cohort_draws.py --seeds 1 2 3 --workdir /tmp/draws`` from the
repository root runs what is missing (9-14 minutes per draw on 2 CPU cores) and writes
studies/cohort_draws.md; ``--no-run`` only summarises draws already run.
"""

from __future__ import annotations

import argparse
import datetime
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml
from oracle_ceiling import fit_latent_logistic, latent_trait_columns, write_report

from hccrad.cohorts.sheet import read_sheet
from hccrad.models.fit import fit_all, predict_all
from hccrad.models.inputs import deep_score_table, without_exclusions
from hccrad.stats.discrimination import delong_auc, delong_test

REPORT = Path(__file__).with_suffix(".md")
COHORT = "sim_tace"
MODELS = ("clinical", "DLTR", "DLTR_MLP")


def arguments() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("config/config.yaml"))
    parser.add_argument("--seeds", type=int, nargs="+", required=True)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/hccrad_draws"))
    parser.add_argument("--endpoints", nargs="+", default=["response", "proliferative"])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--no-run", action="store_true", help="summarise draws already run")
    parser.add_argument("--output", type=Path, default=REPORT)
    return parser.parse_args()


def scores_path(draw: Path, endpoint: str) -> Path:
    """The DLTR score table of one endpoint in a draw's working directory."""
    return draw / "results" / COHORT / "deep" / endpoint / "scores.tsv"


def run_draw(config: Path, seed: int, draw: Path, endpoints: list[str], cores: int) -> None:
    """Run the workflow up to the response cohort's DLTR scores with the config seed `seed`."""
    draw.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "--cores",
        str(cores),
        "--directory",
        str(draw),
        "--configfile",
        str(config.resolve()),
        "--config",
        f"seed={seed}",
        "--snakefile",
        str(Path("Snakefile").resolve()),
        *[str(scores_path(Path("."), endpoint)) for endpoint in endpoints],
    ]
    with (draw / "snakemake.log").open("w") as log:
        subprocess.run(command, check=True, stdout=log, stderr=subprocess.STDOUT)


def draw_rows(draw: Path, seed: int, endpoints: list[str], config: dict) -> list[dict]:
    """External AUCs of the compared models and the DeLong test of DLTR - clinical, per endpoint."""
    root = draw / "results" / COHORT
    sheet = read_sheet(root / "sheet.tsv")
    # The draws stop at the DLTR scores, before the radiomics step that gathers exclusions.tsv;
    # under imaging.on_error: stop there are none, and deep_score_table names any sheet
    # patient without a score.
    if (root / "exclusions.tsv").exists():
        exclusions = pd.read_csv(root / "exclusions.tsv", sep="\t", index_col="patient_id")
        sheet = without_exclusions(sheet, exclusions)
    latent = pd.read_csv(root / "truth" / "latent.tsv", sep="\t", index_col="patient_id")
    traits = latent.loc[sheet.index, latent_trait_columns()]
    train = sheet["split"] == "train"
    external = sheet["split"].str.startswith("external")
    rows = []
    for endpoint in endpoints:
        deep = deep_score_table(
            pd.read_csv(scores_path(draw, endpoint), sep="\t", index_col="patient_id"),
            sheet,
            config["models"]["dltr_score_column"],
        )
        features = {"deep": deep}
        models = fit_all(sheet, features, endpoint, seed, config["models"])
        predictions = predict_all(models, sheet, features)
        scores = predictions[predictions["split"].str.startswith("external")].pivot(
            index="patient_id", columns="model", values="score"
        )
        y = sheet.loc[scores.index, endpoint].astype(int)
        y_train = sheet.loc[train, endpoint].astype(int)
        ceiling = fit_latent_logistic(traits[train], y_train)
        test = delong_test(y, scores["DLTR"], scores["clinical"])
        rows.append(
            {
                "seed": seed,
                "endpoint": endpoint,
                "training events / patients": f"{int(y_train.sum())} / {int(train.sum())}",
                **{model: delong_auc(y, scores[model]).auc for model in MODELS},
                "DLTR - clinical (95% CI)": (
                    f"{test.difference:+.3f} ({test.ci_low:+.3f} to {test.ci_high:+.3f})"
                ),
                "DeLong P": test.p_value,
                "latent-trait ceiling": delong_auc(
                    y, ceiling.decision_function(traits[external])
                ).auc,
            }
        )
    return rows


def main() -> None:
    """Run the missing draws, then write one row per draw and endpoint and a summary."""
    args = arguments()
    config = yaml.safe_load(args.config.read_text())
    rows = []
    for seed in args.seeds:
        draw = args.workdir / f"seed{seed}"
        missing = [e for e in args.endpoints if not scores_path(draw, e).exists()]
        if missing and args.no_run:
            raise SystemExit(f"draw {draw} lacks DLTR scores for {missing}; run without --no-run")
        if missing:
            run_draw(args.config, seed, draw, args.endpoints, args.cores)
        rows += draw_rows(draw, seed, args.endpoints, config)
    table = pd.DataFrame(rows).sort_values(["endpoint", "seed"], kind="stable")
    summary = (
        table.assign(above=table["DLTR"] > table["clinical"])
        .groupby("endpoint", sort=False)
        .agg(
            draws=("seed", "size"),
            clinical=("clinical", "mean"),
            DLTR=("DLTR", "mean"),
            DLTR_MLP=("DLTR_MLP", "mean"),
            ceiling=("latent-trait ceiling", "mean"),
            DLTR_above_clinical=("above", "sum"),
        )
        .reset_index()
    )
    write_report(
        args.output,
        [
            "# DLTR against the clinical model over draws of the simulated response cohort",
            "",
            f"`studies/cohort_draws.py`, {datetime.date.today().isoformat()}, CPU: the "
            f"default workflow with config seeds {', '.join(map(str, args.seeds))} (each seed "
            "draws the patients, images, splits and network training; every other setting is "
            f"{args.config}'s). External AUCs (centres pooled); DeLong test paired on the "
            "external patients.",
            "",
            table.to_markdown(index=False, floatfmt=".3f"),
            "",
            "Means over the draws (DLTR_above_clinical: draws in which DLTR's external AUC "
            "exceeds the clinical model's):",
            "",
            summary.to_markdown(index=False, floatfmt=".3f"),
            "",
        ],
    )


if __name__ == "__main__":
    main()

"""How far the DLTR's AUCs move with the training seed alone (default config, default cohort).

For each seed, the workflow's own path: every candidate's CV on the training split, the winner's
refit, and the DLTR score (the mean probability of `deep.ensemble`'s networks) of every patient;
then the AUC on the internal test split, on the external centres pooled and per centre. The
seed is the config's seed, which draws the folds, the inner validation parts, the initial
weights and the augmentation; crops, settings and patients stay fixed. Each run appends one row
per seed to studies/dltr_seed_study.md and, for two seeds or more, one row for the mean of
their scores (repeated cross-validation's ensemble).

Nothing is chosen from these numbers (the external AUCs are looked at, so choosing from them
would select on the test centres): they say how far one default run's external AUC may lie from
its average over seeds, i.e. how much of a difference between models one seed can explain.

Run from the repository root after the default workflow has prepared the crops:
``.venv/bin/python studies/dltr_seed_study.py --endpoint proliferative --seeds 1 2 3``
(about 2 min per seed on 2 CPU cores, under a minute on a GPU). ``--set key=value`` changes
one setting of the `deep:` block as in benchmarks/deep_selection_benchmark.py;
``--preparation`` labels crops prepared with other `imaging:` settings (``--results`` names
their results folder).
"""

from __future__ import annotations

import argparse
import datetime
import json
import time
from pathlib import Path

import pandas as pd
import torch
import yaml
from sklearn.metrics import roc_auc_score

from hccrad.core.script_options import (
    add_settings_options,
    cohort_parser,
    device_name,
    overrides,
    with_row,
)
from hccrad.core.torch_runtime import resolve_device
from hccrad.deep import dltr
from hccrad.deep.predict import predict_ensemble
from hccrad.deep.select import select_and_refit, selection_summary
from hccrad.imaging.batches import patient_folders

REPORT = Path(__file__).with_suffix(".md")
HEADER = (
    "# DLTR external AUC over training seeds (default config, default simulated cohort)\n\n"
    "One row per seed of `studies/dltr_seed_study.py`: the workflow's selection and DLTR "
    "score with only the config seed changed. CPU runs are bit-reproducible; CUDA runs use "
    "mixed precision and cuDNN autotuning, so their AUCs differ slightly from the CPU's.\n\n"
    "| date | device | preparation | settings | endpoint | seed | wall time, s | winner "
    "| mean CV AUC per architecture | internal test AUC | external AUC | per centre |\n"
    "| --- | --- | --- | --- | --- | ---: | ---: | --- | --- | ---: | ---: | --- |\n"
)


def arguments() -> argparse.Namespace:
    """Command-line options."""
    parser = cohort_parser(__doc__.splitlines()[0], REPORT)
    add_settings_options(parser)
    parser.add_argument("--seeds", type=int, nargs="+", required=True)
    parser.add_argument("--preparation", default="as acquired (default)")
    return parser.parse_args()


def held_out_aucs(sheet: pd.DataFrame, scores: pd.Series, endpoint: str) -> dict[str, float]:
    """AUC of the scores on the internal test split, the external centres pooled and each one."""
    scored = sheet.assign(score=scores.reindex(sheet.index)).dropna(subset=["score"])
    outcome = scored[endpoint].astype(int)
    external = scored["split"].str.startswith("external")
    parts = {"internal_test": scored["split"] == "internal_test", "external": external}
    for centre in sorted(scored.loc[external, "centre"].unique()):
        parts[str(centre)] = external & (scored["centre"] == centre)
    return {
        name: float(roc_auc_score(outcome[rows], scored.loc[rows, "score"]))
        for name, rows in parts.items()
        if outcome[rows].nunique() == 2
    }


def main() -> None:
    """Run the selection and the DLTR score once per seed and append a row for each."""
    args = arguments()
    torch.set_num_threads(args.threads)
    settings = yaml.safe_load(args.config.read_text())
    changed = overrides(args.set)
    # pandas, not hccrad.cohorts.sheet.read_sheet: GPU machines may lack the schema libraries.
    sheet = pd.read_csv(
        args.results / args.cohort / "sheet.tsv", sep="\t", index_col="patient_id", dtype=str
    )
    folders = patient_folders(sorted((args.results / args.cohort / "prepared").iterdir()))
    described = ", ".join(f"{k} {json.dumps(v)}" for k, v in changed.items()) or "as config"
    deep_settings = {**settings["deep"], **changed, "device": args.device, "progress": False}
    # The crops do not depend on the seed: read them once.
    crops, excluded = dltr.cohort_crops(
        folders, list(sheet.index), dltr.deep_config(deep_settings, args.seeds[0])
    )
    train = dltr.training_sheet(sheet, excluded)
    device = device_name(resolve_device(args.device))
    common = f"{device} | {args.preparation} | {described} | {args.endpoint}"
    seed_scores: dict[int, pd.Series] = {}
    total_seconds = 0.0
    for seed in args.seeds:
        config = dltr.deep_config(deep_settings, seed)
        started = time.perf_counter()
        selection = select_and_refit(
            train, crops.subset(train.index), config, endpoint=args.endpoint
        )
        members = selection.ensemble_members(config.ensemble)
        seed_scores[seed] = predict_ensemble(members, crops, device=config.device)
        seconds = time.perf_counter() - started
        total_seconds += seconds
        means = ", ".join(
            f"{row.architecture} {row.mean_auc:.3f}"
            for row in selection_summary(selection.table).itertuples()
        )
        add_row(
            args.output,
            f"{common} | {seed} | {seconds:.0f} | {selection.winner} | {means}",
            held_out_aucs(sheet, seed_scores[seed], args.endpoint),
        )
    if len(seed_scores) > 1:
        # Averaging the seeds' scores is repeated cross-validation's ensemble (r x (k + 1)
        # networks on r fold draws): does a larger ensemble close a gap that one seed shows?
        mean_score = pd.concat(seed_scores, axis=1).mean(axis=1)
        add_row(
            args.output,
            f"{common} | mean score of the {len(seed_scores)} seeds above "
            f"| {total_seconds:.0f} | per seed | -",
            held_out_aucs(sheet, mean_score, args.endpoint),
        )


def add_row(report: Path, leading_cells: str, aucs: dict[str, float]) -> None:
    """Append one row (today's date, the given cells, then the AUCs) to the report's table."""
    centres = ", ".join(
        f"{name} {auc:.3f}"
        for name, auc in aucs.items()
        if name not in ("internal_test", "external")
    )
    row = (
        f"| {datetime.date.today().isoformat()} | {leading_cells} "
        f"| {aucs.get('internal_test', float('nan')):.3f} "
        f"| {aucs.get('external', float('nan')):.3f} | {centres} |\n"
    )
    text = report.read_text() if report.exists() else HEADER
    report.write_text(with_row(text, row))
    print(row, flush=True)


if __name__ == "__main__":
    main()

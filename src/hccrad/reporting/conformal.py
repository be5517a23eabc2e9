"""How far the predictions can be trusted, per evaluated cohort: conformal coverage, domain flags.

The sets and intervals come from ``hccrad.models.conformal`` (calibrated on training data only);
here they meet the outcomes of the internal-test and external patients. The out-of-domain flags
(``hccrad.models.domain``) are counted per cohort the same way.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hccrad.core.splits import TRAIN
from hccrad.reporting.evaluation import evaluation_cohorts
from hccrad.stats.checks import require_columns

COVERAGE_COLUMNS: tuple[str, ...] = (
    "model",
    "cohort",
    "n",
    "covered",
    "coverage",
    "coverage_nominal",
    "set_0",
    "set_1",
    "set_both",
    "set_empty",
    "mean_interval_width",
)


def covered(prediction_set: pd.Series, outcome: pd.Series) -> pd.Series:
    """Whether each patient's prediction set holds its observed outcome."""
    labels = pd.to_numeric(outcome, errors="coerce")
    return pd.Series(
        [
            pd.notna(y) and str(int(y)) in ("" if pd.isna(s) else str(s)).split(",")
            for s, y in zip(prediction_set, labels, strict=True)
        ],
        index=prediction_set.index,
    )


def coverage_table(intervals: pd.DataFrame) -> pd.DataFrame:
    """Empirical coverage per model and evaluated cohort, beside the nominal level.

    ``intervals``: conformal_intervals on fit_models' predictions (patient_id, split, centre,
    model, score, outcome, ...). The training split is left out: its scores are in-sample.
    Patients without an observed outcome are not counted.
    """
    require_columns(intervals, ["patient_id", "split", "centre", "outcome"], "intervals")
    rows = []
    for name, table in intervals.groupby("model", sort=False):
        table = table[pd.to_numeric(table["outcome"], errors="coerce").notna()]
        patients = table.set_index("patient_id")
        for cohort, members in evaluation_cohorts(patients).items():
            if cohort == TRAIN:
                continue
            part = patients.loc[members]
            hit = covered(part["prediction_set"], part["outcome"])
            sets = part["prediction_set"].astype(str)
            rows.append(
                {
                    "model": name,
                    "cohort": cohort,
                    "n": len(part),
                    "covered": int(hit.sum()),
                    "coverage": float(hit.mean()) if len(part) else np.nan,
                    "coverage_nominal": float(part["coverage_nominal"].iloc[0]),
                    "set_0": int((sets == "0").sum()),
                    "set_1": int((sets == "1").sum()),
                    "set_both": int((sets == "0,1").sum()),
                    "set_empty": int((sets == "").sum()),
                    "mean_interval_width": float(
                        (part["interval_high"] - part["interval_low"]).mean()
                    ),
                }
            )
    return pd.DataFrame(rows, columns=list(COVERAGE_COLUMNS))


DOMAIN_SUMMARY_COLUMNS: tuple[str, ...] = (
    "cohort",
    "patients",
    "overall",
    "acquisition",
    "radiomic_feature",
)
# Checks of the raw acquisition and the tumour (the rest are radiomic features).
ACQUISITION_CHECK = r"^spacing_|_intensity_p\d+$|^tumour_volume_ml$"


def domain_summary(flags: pd.DataFrame, patients: pd.DataFrame) -> pd.DataFrame:
    """Patients flagged per cohort: overall, on an acquisition check, on a radiomic feature.

    ``flags``: hccrad.models.domain.domain_flags; ``patients``: split and centre, index
    patient_id (the sheet).
    """
    require_columns(flags, ["patient_id", "check", "out_of_domain"], "domain flags")
    flagged = flags.assign(
        part=np.where(
            flags["check"] == "overall",
            "overall",
            np.where(
                flags["check"].str.contains(ACQUISITION_CHECK), "acquisition", "radiomic_feature"
            ),
        )
    )
    per_patient = (
        flagged.groupby(["patient_id", "part"])["out_of_domain"].any().unstack(fill_value=False)
    )
    known = patients.loc[patients.index.intersection(per_patient.index, sort=False)]
    rows = []
    for cohort, members in evaluation_cohorts(known).items():
        part = per_patient.loc[members]
        rows.append(
            {"cohort": cohort, "patients": len(members)}
            | {
                name: int(part[name].sum()) if name in part else 0
                for name in DOMAIN_SUMMARY_COLUMNS[2:]
            }
        )
    return pd.DataFrame(rows, columns=list(DOMAIN_SUMMARY_COLUMNS))

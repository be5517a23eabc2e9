"""Simulated cohorts with planted truth: imaging traits, clinical tables, endpoints, survival.

The generative model (documented in config/README.md and written out as the truth file):

1. Every patient has latent imaging traits, standard-normal z-scores with a fixed biological
   correlation (large tumours are more often necrotic and heterogeneous).
2. The traits set how the tumours look (``trait_appearance``) and the phantom renders them.
3. Clinical covariates are drawn partly from the traits (tumour size and number are measured
   clinically, with error; AFP follows heterogeneity a little) and partly independently.
4. Binary endpoints are Bernoulli draws from a logistic model on the traits and clinical
   factors, with the intercept set so that the cohort has the configured event rate.
5. PFS and OS are Weibull times whose log hazard is linear in the same factors, with
   administrative censoring and drop-out.

Because most of the traits are visible only in the images, a model of the images can beat a
model of the clinical table: the premise of the studies this workflow reproduces.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.special import expit
from sklearn.model_selection import train_test_split

# Defined with the names the Snakefile's parse needs.
from hccrad.core.plan import patient_ids, shard_members, tcga_like_ids
from hccrad.core.seeding import rng_for
from hccrad.core.splits import INTERNAL_TEST, RADIOGENOMICS, TRAIN

TRAITS: tuple[str, ...] = (
    "tumour_size",
    "tumour_number",
    "arterial_enhancement",
    "washout",
    "hepatobiliary_hypointensity",
    "heterogeneity",
    "necrosis",
    "capsule",
    "irregularity",
)
CLINICAL_FACTORS: tuple[str, ...] = ("afp", "bclc", "child_pugh", "albi", "age")
EFFECT_NAMES: tuple[str, ...] = TRAITS + CLINICAL_FACTORS
SURVIVAL_EFFECT_NAMES: tuple[str, ...] = (*EFFECT_NAMES, "response")
# Prefix of the latent z-score columns in the truth's latent table.
LATENT_PREFIX = "z_"

# Correlations between latent traits (pairs not listed are independent). Large HCCs outgrow
# their blood supply (necrosis) and are more heterogeneous and infiltrative.
TRAIT_CORRELATIONS: dict[tuple[str, str], float] = {
    ("tumour_size", "necrosis"): 0.35,
    ("tumour_size", "heterogeneity"): 0.25,
    ("necrosis", "heterogeneity"): 0.30,
    ("irregularity", "tumour_size"): 0.20,
    ("arterial_enhancement", "washout"): 0.30,
}
AETIOLOGIES: tuple[str, ...] = ("HBV", "HCV", "alcohol", "MASLD", "other")
# Columns that the simulator leaves empty at the configured rate (missing completely at random).
MISSABLE_COLUMNS: tuple[str, ...] = ("afp", "albi_score", "albi_grade", "child_pugh")


def trait_correlation_matrix() -> np.ndarray:
    """The latent traits' correlation matrix (positive definite by construction)."""
    corr = np.eye(len(TRAITS))
    for (a, b), value in TRAIT_CORRELATIONS.items():
        i, j = TRAITS.index(a), TRAITS.index(b)
        corr[i, j] = corr[j, i] = value
    return corr


def simulate_traits(n_patients: int, rng: np.random.Generator) -> pd.DataFrame:
    """Latent imaging traits as correlated standard-normal z-scores, one row per patient."""
    chol = np.linalg.cholesky(trait_correlation_matrix())
    z = rng.standard_normal((n_patients, len(TRAITS))) @ chol.T
    return pd.DataFrame(z, columns=list(TRAITS))


def trait_appearance(traits: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Map latent z-scores to the physical tumour parameters that the phantom renders."""
    z = traits
    diameter = np.clip(np.exp(np.log(42.0) + 0.45 * z["tumour_size"]), 12.0, 90.0)
    # Tumour count: 1 + Poisson, more satellites when the latent trait is high; capped at 4.
    extra = rng.poisson(0.45 * np.exp(0.6 * z["tumour_number"].to_numpy()))
    return pd.DataFrame(
        {
            "largest_diameter_mm": diameter,
            "n_tumours": np.minimum(1 + extra, 4),
            # Relative signal gain of viable tumour over liver in the arterial phase.
            "arterial_gain": 0.05 + 0.55 * expit(1.3 * z["arterial_enhancement"]),
            # Relative loss of tumour signal against liver in the portal-venous phase.
            "washout": 0.05 + 0.35 * expit(1.2 * z["washout"]),
            # Tumour-to-liver signal ratio in the hepatobiliary phase (lower = more hypointense).
            "hbp_ratio": 0.75 - 0.4 * expit(1.2 * z["hepatobiliary_hypointensity"]),
            # Amplitude of the smooth multiplicative texture inside viable tumour.
            "texture_amplitude": 0.04 + 0.36 * expit(1.3 * z["heterogeneity"]),
            # Radius fraction of the non-enhancing core.
            "necrotic_fraction": 0.65 * expit(1.6 * (z["necrosis"] - 0.4)),
            # Portal-venous/hepatobiliary rim enhancement of the capsule.
            "capsule_gain": 0.45 * expit(1.5 * (z["capsule"] - 0.2)),
            # Relative amplitude of the smooth radial deformation of the margin.
            "margin_irregularity": 0.03 + 0.32 * expit(1.4 * z["irregularity"]),
        },
        index=traits.index,
    )


def simulate_clinical(
    traits: pd.DataFrame,
    appearance: pd.DataFrame,
    aetiology_probabilities: np.ndarray,
    rng: np.random.Generator,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Clinical covariates and their latent z-scores; marginals follow HCC-TACE-Seg."""
    n = len(traits)
    # One categorical draw per patient from that patient's centre mix (case-mix shift).
    aetiology_draw = (rng.random((n, 1)) > np.cumsum(aetiology_probabilities, axis=1)).sum(axis=1)
    # Latent clinical factors; AFP tracks heterogeneity a little (proliferative tumours).
    z_afp = 0.3 * traits["heterogeneity"].to_numpy() + np.sqrt(1 - 0.09) * rng.standard_normal(n)
    z_albi = rng.standard_normal(n)
    age = np.clip(rng.normal(67.0, 11.0, n), 30, 92).round()
    child_pugh_b = rng.random(n) < expit(-1.6 + 0.9 * z_albi)
    vascular_invasion = rng.random(n) < expit(
        -1.1 + 0.8 * traits["tumour_size"] + 0.6 * traits["irregularity"]
    )
    n_tumours = appearance["n_tumours"].to_numpy()
    diameter = appearance["largest_diameter_mm"].to_numpy()
    bclc = np.where(vascular_invasion, "C", np.where((n_tumours >= 2) | (diameter > 50), "B", "A"))
    albi_score = -2.45 + 0.45 * z_albi + 0.25 * child_pugh_b
    clinical = pd.DataFrame(
        {
            "age": age.astype(int),
            "sex": np.where(rng.random(n) < 0.72, "M", "F"),
            "aetiology": np.array(AETIOLOGIES)[np.minimum(aetiology_draw, len(AETIOLOGIES) - 1)],
            "bclc": bclc,
            "tumour_number": n_tumours.astype(int),
            # Clinical size is a radiologist's diameter: the truth plus reading error (mm).
            "tumour_size_mm": np.maximum(diameter + rng.normal(0, 3.0, n), 5).round(),
            "afp": np.maximum(10 ** (1.5 + 1.3 * z_afp), 1.0).round(1),
            "child_pugh": np.where(child_pugh_b, "B", "A"),
            "albi_score": albi_score.round(3),
            "albi_grade": np.select([albi_score <= -2.60, albi_score <= -1.39], [1, 2], 3),
        },
        index=traits.index,
    )
    factors = pd.DataFrame(
        {
            "afp": z_afp,
            "bclc": pd.Series(bclc).map({"A": 0.0, "B": 1.0, "C": 2.0}).to_numpy() - 1.0,
            "child_pugh": child_pugh_b.astype(float),
            "albi": z_albi,
            "age": (age - 65.0) / 10.0,
        },
        index=traits.index,
    )
    return clinical, factors


def linear_predictor(factors: pd.DataFrame, effects: Mapping[str, float]) -> np.ndarray:
    """Sum of effect x factor over the named effects (traits per SD, clinical as documented)."""
    unknown = set(effects) - set(factors.columns)
    if unknown:
        raise KeyError(f"effects name unknown factors {sorted(unknown)}; known: {list(factors)}")
    lp = np.zeros(len(factors))
    for name, beta in effects.items():
        lp += float(beta) * factors[name].to_numpy()
    return lp


def intercept_for_rate(lp: np.ndarray, rate: float) -> float:
    """The logistic intercept that gives the cohort a mean event probability of ``rate``."""
    return float(brentq(lambda b: expit(b + lp).mean() - rate, -30.0, 30.0))


def simulate_binary_endpoint(
    factors: pd.DataFrame, effects: Mapping[str, float], rate: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, float]:
    """Bernoulli outcomes from a logistic model; returns outcomes, probabilities, intercept."""
    lp = linear_predictor(factors, effects)
    intercept = intercept_for_rate(lp, rate)
    probability = expit(intercept + lp)
    return (rng.random(len(lp)) < probability).astype(int), probability, intercept


def weibull_times(
    log_hazard: np.ndarray, median: float, shape: float, rng: np.random.Generator
) -> np.ndarray:
    """Weibull event times with proportional hazards; ``median`` is at log hazard 0."""
    scale = median / np.log(2.0) ** (1.0 / shape)
    return scale * (-np.log(rng.random(len(log_hazard))) / np.exp(log_hazard)) ** (1.0 / shape)


def simulate_survival(
    factors: pd.DataFrame, survival_cfg: Mapping[str, Any], rng: np.random.Generator
) -> pd.DataFrame:
    """PFS and OS in months with censoring; progression-free survival ends at death too."""
    os_cfg, pfs_cfg, censor_cfg = survival_cfg["os"], survival_cfg["pfs"], survival_cfg["censoring"]
    n = len(factors)
    os_true = weibull_times(
        linear_predictor(factors, os_cfg["effects"]),
        os_cfg["median_months"],
        os_cfg["weibull_shape"],
        rng,
    )
    progression = weibull_times(
        linear_predictor(factors, pfs_cfg["effects"]),
        pfs_cfg["median_months"],
        pfs_cfg["weibull_shape"],
        rng,
    )
    low, high = censor_cfg["follow_up_months"]
    follow_up = rng.uniform(low, high, n)
    dropout = rng.exponential(12.0 / max(censor_cfg["dropout_per_year"], 1e-9), n)
    censor = np.minimum(follow_up, dropout)
    pfs_true = np.minimum(progression, os_true)
    # Times are reported to a tenth of a month, as in clinical tables; never zero.
    return pd.DataFrame(
        {
            "pfs_time": np.maximum(np.minimum(pfs_true, censor), 0.1).round(1),
            "pfs_event": (pfs_true <= censor).astype(int),
            "os_time": np.maximum(np.minimum(os_true, censor), 0.1).round(1),
            "os_event": (os_true <= censor).astype(int),
        },
        index=factors.index,
    )


def blank_missing(
    clinical: pd.DataFrame, fraction: float, rng: np.random.Generator
) -> pd.DataFrame:
    """Blank the missable clinical values completely at random at ``fraction``."""
    out = clinical.copy()
    for column in MISSABLE_COLUMNS:
        missing = rng.random(len(out)) < fraction
        out[column] = out[column].astype(object).where(~missing, None)
    return out


def assign_splits(
    centres: Sequence[Mapping[str, Any]],
    patient_centre: np.ndarray,
    stratify_by: np.ndarray,
    seed: int,
    cohort: str,
) -> np.ndarray:
    """Train/internal-test split stratified by outcome at development centres; others external."""
    split = np.empty(len(patient_centre), dtype=object)
    for centre in centres:
        rows = np.flatnonzero(patient_centre == centre["name"])
        if centre["role"] == "external":
            split[rows] = f"external_{centre['name']}"
            continue
        fraction = centre["internal_test_fraction"]
        if fraction == 0:
            split[rows] = TRAIN
            continue
        random_state = int(rng_for(seed, cohort, "split", centre["name"]).integers(2**31 - 1))
        classes, counts = np.unique(stratify_by[rows], return_counts=True)
        stratify = stratify_by[rows] if len(classes) > 1 and counts.min() >= 2 else None
        if stratify is None:
            warnings.warn(
                f"{cohort}: centre {centre['name']} has too few patients of one outcome to "
                "stratify the train/internal-test split; splitting at random.",
                stacklevel=2,
            )
        train, test = train_test_split(
            rows, test_size=fraction, stratify=stratify, random_state=random_state
        )
        split[train], split[test] = TRAIN, INTERNAL_TEST
    return split


def simulate_cohort(cohort_cfg: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """Simulate one cohort's patients: sheet columns, latent truth and the planted effects."""
    name = cohort_cfg["name"]
    centres = cohort_cfg["centres"]
    ids = (
        tcga_like_ids(centres[0]["n_patients"], cohort_cfg["tss_code"])
        if cohort_cfg["role"] == "radiogenomics"
        else patient_ids(centres)
    )
    patient_centre = np.array([c["name"] for c in centres for _ in range(c["n_patients"])])
    n = len(ids)
    traits = simulate_traits(n, rng_for(seed, name, "traits"))
    appearance = trait_appearance(traits, rng_for(seed, name, "appearance"))
    aetiology_probabilities = np.concatenate(
        [np.tile(_aetiology_weights(c), (c["n_patients"], 1)) for c in centres]
    )
    clinical, clinical_factors = simulate_clinical(
        traits, appearance, aetiology_probabilities, rng_for(seed, name, "clinical")
    )
    factors = pd.concat([traits, clinical_factors], axis=1)
    factors.index = pd.Index(ids, name="patient_id")
    endpoint_columns: dict[str, np.ndarray] = {}
    endpoint_truth: dict[str, Any] = {}
    for endpoint, spec in cohort_cfg.get("endpoints", {}).items():
        outcome, probability, intercept = simulate_binary_endpoint(
            factors, spec["effects"], spec["rate"], rng_for(seed, name, "endpoint", endpoint)
        )
        endpoint_columns[endpoint] = outcome
        endpoint_columns[f"{endpoint}_probability"] = probability
        endpoint_truth[endpoint] = {
            "effects_log_odds": dict(spec["effects"]),
            "intercept": intercept,
            "target_rate": spec["rate"],
            "observed_rate": float(outcome.mean()),
        }
    survival_factors = factors.copy()
    survival_factors["response"] = endpoint_columns.get("response", np.zeros(n))
    survival = simulate_survival(
        survival_factors, cohort_cfg["survival"], rng_for(seed, name, "survival")
    )
    stratify = endpoint_columns.get("response", np.zeros(n, dtype=int))
    split = (
        np.full(n, RADIOGENOMICS, dtype=object)
        if cohort_cfg["role"] == "radiogenomics"
        else assign_splits(centres, patient_centre, stratify, seed, name)
    )
    clinical.index = factors.index
    clinical = blank_missing(
        clinical, cohort_cfg["missing_fraction"], rng_for(seed, name, "missing")
    )
    survival.index = factors.index
    sheet = pd.concat(
        [
            pd.DataFrame({"centre": patient_centre, "split": split}, index=factors.index),
            clinical,
            pd.DataFrame(
                {k: v for k, v in endpoint_columns.items() if not k.endswith("_probability")},
                index=factors.index,
            ),
            survival,
        ],
        axis=1,
    )
    appearance.index = factors.index
    latent = pd.concat(
        [
            factors.add_prefix(LATENT_PREFIX),
            appearance,
            pd.DataFrame(
                {k: v for k, v in endpoint_columns.items() if k.endswith("_probability")},
                index=factors.index,
            ),
        ],
        axis=1,
    )
    truth = {
        "cohort": name,
        "role": cohort_cfg["role"],
        "seed": seed,
        "n_patients": n,
        "traits": list(TRAITS),
        "trait_correlations": {f"{a}~{b}": v for (a, b), v in TRAIT_CORRELATIONS.items()},
        "endpoints": endpoint_truth,
        "survival": _plain(cohort_cfg["survival"]),
        # Which pathways follow which trait; the genes and their betas are in planted_genes.tsv.
        "planted_pathways": _plain(cohort_cfg.get("planted_pathways", [])),
        "notes": (
            "Effects are per SD of the latent trait z-scores (columns z_* of the latent table); "
            "bclc per stage (A=-1, B=0, C=+1), child_pugh B vs A, age per 10 years from 65, "
            "afp and albi per SD of their latent z-scores."
        ),
    }
    return {"sheet": sheet, "latent": latent, "truth": truth}


def _aetiology_weights(centre: Mapping[str, Any]) -> np.ndarray:
    """A centre's aetiology probabilities in the order of AETIOLOGIES, normalised."""
    weights = np.array([float(centre["aetiology_mix"].get(a, 0.0)) for a in AETIOLOGIES])
    return weights / weights.sum()


def _plain(value: Any) -> Any:
    """Config sections (Snakemake's nested mappings) as plain JSON-ready dicts and lists."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def image_paths(
    cohort_dir: str | Path, shard: int, patient: str, phases: Sequence[str]
) -> dict[str, str]:
    """Where a simulated patient's images and mask are written, as sheet columns."""
    folder = Path(cohort_dir) / "images" / f"shard{shard}" / patient
    paths = {f"image_{phase}": str(folder / f"{phase}.nii.gz") for phase in phases}
    paths["mask"] = str(folder / "mask.nii.gz")
    return paths


def attach_image_paths(
    patients: pd.DataFrame, cohort_dir: str | Path, n_shards: int, phases: Sequence[str]
) -> pd.DataFrame:
    """The cohort sheet: image and mask columns first, then the patients table."""
    ids = list(patients.index)
    rows = {
        patient: image_paths(cohort_dir, shard, patient, phases)
        for shard in range(1, n_shards + 1)
        for patient in shard_members(ids, n_shards, shard)
    }
    images = pd.DataFrame.from_dict(rows, orient="index").loc[ids]
    images.index.name = patients.index.name
    front = ["centre", "split"]
    return pd.concat([patients[front], images, patients.drop(columns=front)], axis=1)

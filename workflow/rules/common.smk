# Helpers shared by the rules: config validation at start, cohort lookups, target lists.

import os
from pathlib import Path

from snakemake.utils import validate

from hccrad.core.config import (
    check_config,
    imported_cohorts,
    radiomics_for,
    simulated_cohorts,
    tumour_masks,
)
from hccrad.core.plan import patient_ids, shard_members, tcga_like_ids

# The parse imports only modules of the standard library, PyYAML and jsonschema (hccrad.core.config,
# hccrad.core.plan): every cluster job parses again, and `snakemake --lint` runs where only Snakemake
# is installed. Modules that read tables with pandas (hccrad.cohorts.sheet, hccrad.cohorts.idc,
# hccrad.cohorts.sheet_import) are imported inside the functions that read a table to plan the DAG.

validate(config, "../schemas/config.schema.yaml")
# Every job inherits this. OpenMP threads that spin while waiting for a core held by another job
# made a 2-thread network fit up to 10x slower on a 2-core machine (benchmarks/deep_benchmark.md;
# the default run's response selection took 35 min instead of ~5). A user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# Shipped files (resources/, config/, workflow/schemas, pyproject.toml) live in the repository
# that holds this file; results go to the working directory, so the workflow also runs from
# another folder (--directory) and as a module of another project. Found from this file at
# include time: in a module, workflow.basedir is the deploying project's workflow folder.
BASE = Path(workflow.current_basedir.get_path_or_uri(secret_free=True)).parents[1]


def resolve(path):
    """A config path: as given if it exists from the working directory, else in the workflow."""
    return path if Path(path).exists() else str(BASE / path)


config["gene_sets"] = resolve(config["gene_sets"])
check_config(config)

SIMULATED = simulated_cohorts(config)
# Cohorts from a table (bring-your-own sheet) and/or downloads (IDC, GDC): download_common.smk.
IMPORTED = imported_cohorts(config)
COHORTS = {**SIMULATED, **IMPORTED}
# Sheets come from the simulation or the import, told apart by name ("(?!)" matches none).
SIMULATED_PATTERN = "|".join(sorted(SIMULATED)) or "(?!)"
IMPORTED_PATTERN = "|".join(sorted(IMPORTED)) or "(?!)"
RESPONSE_COHORT = config["cohorts"]["response"]
RADIOGENOMICS_COHORT = config["cohorts"]["radiogenomics"]
ENV = "../../envs/hccrad.yaml"


def cohort_cfg(cohort):
    """The simulate section of a simulated cohort, the sheets section of an imported one."""
    return COHORTS[cohort]


def shard_dirs(wildcards):
    """Every image shard folder of a simulated cohort."""
    n = cohort_cfg(wildcards.cohort)["n_shards"]
    return [f"results/{wildcards.cohort}/images/shard{s}" for s in range(1, n + 1)]


def lesion_tables(wildcards):
    """Every shard's lesion truth table of a simulated cohort."""
    n = cohort_cfg(wildcards.cohort)["n_shards"]
    return [
        f"results/{wildcards.cohort}/truth/lesions/shard{s}.tsv"
        for s in range(1, n + 1)
    ]


def cohort_patients(cohort):
    """Patient ids of a cohort, known before any job runs (simulated: from the config)."""
    if cohort in IMPORTED:
        return imported_patients(cohort)
    spec = cohort_cfg(cohort)
    if spec["role"] == "radiogenomics":
        return tcga_like_ids(spec["centres"][0]["n_patients"], spec["tss_code"])
    return patient_ids(spec["centres"])


def modality(cohort):
    """The imaging modality of a cohort: mri or ct."""
    return cohort_cfg(cohort)["modality"]


def simulation_spec(cohort):
    """A simulated cohort's section without ``masks``, which changes preparation, not images."""
    return {key: value for key, value in cohort_cfg(cohort).items() if key != "masks"}


def cohort_masks(cohort):
    """Where a cohort's tumour masks come from: reference (its sheet) or liver_only (the model)."""
    return tumour_masks(cohort_cfg(cohort))


def prepared_dir(cohort):
    """The folder of prepared patients that radiomics and deep learning read.

    A liver-only cohort's tumours are drawn by the segmentation model: its patients are
    prepared again with the predicted tumour into prepared_auto/ (segment.smk).
    """
    return "prepared_auto" if cohort_masks(cohort) == "liver_only" else "prepared"


def prepared_patient(wildcards):
    """One patient's prepared folder for radiomics (prepared/ or prepared_auto/)."""
    folder = prepared_dir(wildcards.cohort)
    return f"results/{wildcards.cohort}/{folder}/{wildcards.patient}"


def patient_shard(wildcards):
    """The image shard folder that holds a simulated patient's images."""
    if wildcards.cohort in IMPORTED:
        return imported_images(wildcards)
    ids = cohort_patients(wildcards.cohort)
    n = cohort_cfg(wildcards.cohort)["n_shards"]
    shard = next(
        s for s in range(1, n + 1) if wildcards.patient in shard_members(ids, n, s)
    )
    return f"results/{wildcards.cohort}/images/shard{shard}"


def radiomics_section(wildcards):
    """The radiomics config with the settings of the cohort's modality (MRI and CT differ)."""
    return radiomics_for(config["radiomics"], modality(wildcards.cohort))


def radiomics_params(wildcards):
    """The PyRadiomics parameter file for the cohort's modality."""
    return resolve(config["radiomics"]["params"][modality(wildcards.cohort)])


def harmonisation_reference(wildcards):
    """The response cohort's features and sheet: ComBat on another cohort fits on its training."""
    if (
        config["radiomics"]["harmonisation"] != "combat"
        or wildcards.cohort == RESPONSE_COHORT
    ):
        return {}
    return {
        "reference_features": f"results/{RESPONSE_COHORT}/radiomics/features.parquet",
        "reference_sheet": f"results/{RESPONSE_COHORT}/sheet.tsv",
    }


def harmonisation_targets():
    """The harmonisation diagnostic of the response cohort, when features are harmonised."""
    if config["radiomics"]["harmonisation"] == "none":
        return []
    folder = f"results/{RESPONSE_COHORT}/radiomics"
    return [
        f"{folder}/harmonisation_separation.tsv",
        f"{folder}/harmonisation_features.tsv",
        f"{folder}/harmonisation.png",
    ]


def per_patient(pattern):
    """An input function: ``pattern`` filled in for every patient of the cohort.

    ``{prepared}`` in the pattern becomes the cohort's prepared folder (prepared_dir).
    """

    def files(wildcards):
        folder = prepared_dir(wildcards.cohort)
        return [
            pattern.format(cohort=wildcards.cohort, patient=patient, prepared=folder)
            for patient in cohort_patients(wildcards.cohort)
        ]

    return files


def perturbed_tables(wildcards):
    """Perturbed-mask features of the robustness patients (training patients with features)."""
    sheet_checkpoint = (
        checkpoints.import_sheet
        if wildcards.cohort in IMPORTED
        else checkpoints.gather_sheet
    )
    sheet_path = sheet_checkpoint.get(cohort=wildcards.cohort).output.sheet
    # Patients excluded in preparation or extraction (on_error: exclude) have no features.
    gathered = checkpoints.gather_radiomics.get(cohort=wildcards.cohort).output
    from hccrad.cohorts.sheet import read_patients, read_sheet, robustness_patients

    sheet = read_sheet(sheet_path)
    patients = robustness_patients(
        sheet.drop(index=read_patients(gathered.exclusions).index),
        config["radiomics"]["robustness"]["n_patients"],
    )
    return [
        f"results/{wildcards.cohort}/radiomics/perturbed/{patient}.parquet"
        for patient in patients
    ]


def has_images(cohort):
    """Whether a cohort has images (simulated, or an imported cohort with images not none)."""
    return cohort in SIMULATED or IMPORTED[cohort]["images"] != "none"


def all_targets():
    """The default targets: cohorts, radiomics, deep learning, models and radiogenomics."""
    targets = []
    for cohort in (RESPONSE_COHORT, RADIOGENOMICS_COHORT):
        targets += [
            f"results/{cohort}/sheet.tsv",
            f"results/{cohort}/table1.tsv",
            f"results/{cohort}/table1.png",
        ]
        if cohort in SIMULATED:
            targets += [
                f"results/{cohort}/truth/truth.json",
                f"results/{cohort}/truth/lesions.tsv",
            ]
        # Imaging features are defined on the response cohort (robust ICC, DLTR network).
        if has_images(cohort) and has_images(RESPONSE_COHORT):
            targets += [
                f"results/{cohort}/qc/cohort_qc.png",
                f"results/{cohort}/radiomics/features_robust.parquet",
                f"results/{cohort}/exclusions.tsv",
                f"results/{cohort}/qc/preprocessing_qc.png",
            ]
    if has_images(RESPONSE_COHORT):
        targets += [
            f"results/{RESPONSE_COHORT}/radiomics/icc.tsv",
            f"results/{RESPONSE_COHORT}/radiomics/icc.png",
        ] + harmonisation_targets()
    targets.append(f"results/{RADIOGENOMICS_COHORT}/rnaseq/gdc_sample_sheet.tsv")
    if RADIOGENOMICS_COHORT in SIMULATED:
        targets.append(f"results/{RADIOGENOMICS_COHORT}/truth/planted_genes.tsv")
    # Deep learning and radiogenomics need the response cohort's images; without them the
    # clinical model and survival still run.
    imaging = (
        deep_targets() + segment_targets() + radiogenomics_targets()
        if has_images(RESPONSE_COHORT)
        else []
    )
    # A single-centre cohort (crossval.run) is evaluated by repeated cross-validation instead.
    models = crossval_targets() if config["crossval"]["run"] else model_targets()
    return targets + imaging + models

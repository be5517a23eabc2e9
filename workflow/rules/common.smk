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
from hccrad.imaging.batches import (
    batch_members,
    batch_of,
    robustness_chunks,
)

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
# Cohorts whose tumours are in their masks (reference) or drawn by the segmentation model.
LIVER_ONLY = sorted(
    c for c, spec in COHORTS.items() if tumour_masks(spec) == "liver_only"
)
REFERENCE_PATTERN = "|".join(sorted(set(COHORTS) - set(LIVER_ONLY))) or "(?!)"
LIVER_ONLY_PATTERN = "|".join(LIVER_ONLY) or "(?!)"
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


# The per-patient stages run one job per batch of patients (issue 30): batch k holds patients
# (k-1)*batch_size+1 ... k*batch_size of cohort_patients, in that order (hccrad.imaging.batches).
BATCH_SIZE = config["imaging"]["batch_size"]


def batch_patients(wildcards):
    """The patients of batch ``wildcards.batch`` of the cohort."""
    return batch_members(
        cohort_patients(wildcards.cohort), BATCH_SIZE, int(wildcards.batch)
    )


def patient_batch(cohort, patient):
    """The batch number of a patient of a cohort."""
    return batch_of(patient, cohort_patients(cohort), BATCH_SIZE)


def batch_folders(cohort, patients, folder):
    """The batch folders (results/<cohort>/<folder>/batch_<k>) holding ``patients``, in order."""
    batches = dict.fromkeys(patient_batch(cohort, patient) for patient in patients)
    return [f"results/{cohort}/{folder}/batch_{batch}" for batch in batches]


def batch_mem_mb(wildcards, threads):
    """Memory of a batch job: the driver, and one patient's peak (~1.5 GB) per worker."""
    return 1000 + 1500 * threads


def batch_runtime(per_patient_min):
    """A batch job's runtime (min): start-up, and ``per_patient_min`` per patient per worker."""
    return lambda wildcards, threads: 10 + -(-per_patient_min * BATCH_SIZE // threads)


def prepared_batch(wildcards):
    """A batch's prepared folder for radiomics (prepared/ or prepared_auto/)."""
    folder = prepared_dir(wildcards.cohort)
    return f"results/{wildcards.cohort}/{folder}/batch_{wildcards.batch}"


def patient_images(cohort, patient):
    """A patient's images: its simulated shard folder, or its imported files."""
    if cohort in IMPORTED:
        return imported_images(cohort, patient)
    ids = cohort_patients(cohort)
    n = cohort_cfg(cohort)["n_shards"]
    shard = next(s for s in range(1, n + 1) if patient in shard_members(ids, n, s))
    return f"results/{cohort}/images/shard{shard}"


def batch_images(wildcards):
    """Every image input of a batch's patients (each shard folder once)."""
    images = {}
    for patient in batch_patients(wildcards):
        found = patient_images(wildcards.cohort, patient)
        images.update(dict.fromkeys([found] if isinstance(found, str) else found))
    return list(images)


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

    ``{prepared}`` in the pattern becomes the cohort's prepared folder (prepared_dir);
    ``{batch}`` the patient's batch, and a path that names no patient comes once per batch.
    """

    def files(wildcards):
        folder = prepared_dir(wildcards.cohort)
        paths = (
            pattern.format(
                cohort=wildcards.cohort,
                patient=patient,
                prepared=folder,
                batch=patient_batch(wildcards.cohort, patient),
            )
            for patient in cohort_patients(wildcards.cohort)
        )
        return list(dict.fromkeys(paths))

    return files


def robustness_batches(cohort):
    """The robustness patients (training patients with features) in batches, after the checkpoints."""
    sheet_checkpoint = (
        checkpoints.import_sheet if cohort in IMPORTED else checkpoints.gather_sheet
    )
    sheet_path = sheet_checkpoint.get(cohort=cohort).output.sheet
    # Patients excluded in preparation or extraction (on_error: exclude) have no features.
    gathered = checkpoints.gather_radiomics.get(cohort=cohort).output
    return robustness_chunks(
        sheet_path,
        gathered.exclusions,
        config["radiomics"]["robustness"]["n_patients"],
        BATCH_SIZE,
    )


def perturbed_tables(wildcards):
    """Perturbed-mask features of the robustness patients: one folder per batch of them."""
    n = len(robustness_batches(wildcards.cohort))
    return [
        f"results/{wildcards.cohort}/radiomics/perturbed/batch_{batch}"
        for batch in range(1, n + 1)
    ]


def perturbed_batch_patients(wildcards):
    """The robustness patients of a perturbed-mask batch."""
    return robustness_batches(wildcards.cohort)[int(wildcards.batch) - 1]


def perturbed_batch_inputs(wildcards):
    """A perturbed batch's patients' prepared folders and radiomics records (their batches)."""
    patients = perturbed_batch_patients(wildcards)
    cohort = wildcards.cohort
    return {
        "prepared": batch_folders(cohort, patients, prepared_dir(cohort)),
        "records": batch_folders(cohort, patients, "radiomics/patients"),
    }


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
    # A single-centre cohort (crossval.run, or auto without an external split: crossval_common)
    # is evaluated by repeated cross-validation instead.
    models = crossval_targets() if CROSSVAL_RUN else model_targets() + trust_targets()
    return targets + imaging + models

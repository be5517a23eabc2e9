# Helpers of the imported cohorts (download.smk): bring-your-own sheets, IDC and GDC downloads.

from functools import lru_cache

DOWNLOAD = config["download"]
DATA_DIR = DOWNLOAD["data_dir"].rstrip("/")
POLICY = {key: DOWNLOAD[key] for key in ("retries", "backoff_s", "timeout_s")}
IDC_COHORTS = sorted(c for c, spec in IMPORTED.items() if spec["images"] == "idc")
GDC_COHORTS = sorted(c for c, spec in IMPORTED.items() if spec.get("gdc"))
IDC_PATTERN = "|".join(IDC_COHORTS) or "(?!)"
GDC_PATTERN = "|".join(GDC_COHORTS) or "(?!)"

if IMPORTED:
    # pandas, and only when the config imports a cohort (not at every parse: common.smk).
    from hccrad.cohorts.sheet_import import check_imported

    for _name, _spec in IMPORTED.items():
        check_imported(_name, _spec, config, resolve)


@lru_cache
def idc_manifest(cohort):
    """The cohort's download manifest and exclusions, from the shipped IDC index (offline)."""
    # pandas: not at parse (common.smk).
    from hccrad.cohorts.idc import read_index, select_series

    spec = IMPORTED[cohort]["idc"]
    return select_series(read_index(resolve(spec["index"])), spec)


def manifest_patients(cohort):
    """Patients with every selected series in the shipped index: one download job each."""
    return sorted(idc_manifest(cohort)[0]["patient_id"].unique())


@lru_cache
def imported_patients(cohort):
    """Patients the sheet import keeps: table rows with their required values, and imaging."""
    spec = IMPORTED[cohort]
    imaged = manifest_patients(cohort) if spec["images"] == "idc" else None
    if not spec["table"]:
        # The table itself is downloaded (GDC clinical): the imaged patients are the cohort.
        return imaged
    kept = list(table_sheet(cohort).index)
    return kept if imaged is None else sorted(set(kept) & set(imaged))


@lru_cache
def table_sheet(cohort):
    """The sheet a cohort's own table imports to, read once when the DAG is planned."""
    from hccrad.cohorts.sheet_import import (
        planned_sheet,
    )  # pandas: not at parse (common.smk)

    spec = IMPORTED[cohort]
    return planned_sheet(
        resolve(spec["table"]),
        resolve(spec["column_map"]),
        config["seed"],
        spec.get("required"),
    )


@lru_cache
def table_files(cohort):
    """Each patient's image and mask files named in a BYO table (images: sheet)."""
    from hccrad.cohorts.sheet_import import (
        sheet_files,
    )  # pandas: not at parse (common.smk)

    return sheet_files(table_sheet(cohort))


def imported_images(cohort, patient):
    """A patient's images: converted (IDC cohorts) or the files its table row names.

    Inputs of the preparation of the patient's batch, so that an image replaced at the same
    path (a corrected export) reruns that batch and what depends on it, and no other batch.
    """
    images = IMPORTED[cohort]["images"]
    if images == "idc":
        return f"results/{cohort}/nifti/{patient}"
    if images == "sheet":
        return table_files(cohort).get(patient, [])
    return []


def table_images(wildcards):
    """Every file a BYO table names (images: sheet), for the figures that read them directly.

    Other cohorts' images are inputs of their sheet already (simulated shards, IDC NIfTI).
    """
    if IMPORTED.get(wildcards.cohort, {}).get("images") != "sheet":
        return []
    return sorted(
        {f for files in table_files(wildcards.cohort).values() for f in files}
    )


def import_inputs(wildcards):
    """The table, column map and (IDC cohorts) the manifest and every patient's NIfTI."""
    spec = IMPORTED[wildcards.cohort]
    inputs = {
        "table": (
            resolve(spec["table"])
            if spec["table"]
            else f"results/{wildcards.cohort}/download/gdc_clinical.tsv"
        ),
        "column_map": resolve(spec["column_map"]),
        "schema": BASE / "workflow/schemas/sheet.schema.yaml",
    }
    if spec["images"] == "idc":
        inputs["manifest"] = f"results/{wildcards.cohort}/download/idc_manifest.tsv"
        inputs["manifest_exclusions"] = (
            f"results/{wildcards.cohort}/download/idc_exclusions.tsv"
        )
        inputs["nifti"] = [
            f"results/{wildcards.cohort}/nifti/{patient}"
            for patient in manifest_patients(wildcards.cohort)
        ]
    return inputs

"""Damaged RNA-seq inputs: each names the file, the sample and patient, and the fix.

The STAR files are GDC's own augmented STAR counts example (tests/data/gdc), scaled per
sample; sample ids use the TCGA tissue-source-site code Z9, which TCGA never issued.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest

from hccrad.cohorts.rnaseq_counts import CountsFormatError
from hccrad.cohorts.rnaseq_samples import SAMPLE_SHEET_COLUMNS
from hccrad.radiogenomics.expression import load_counts_matrix_cohort, load_star_cohort

STAR_EXAMPLE = (
    Path(__file__).parents[1] / "data" / "gdc" / "gdc_augmented_star_gene_counts_format_example.tsv"
)
STAR_LINES = STAR_EXAMPLE.read_text().splitlines(keepends=True)
# Gene rows of the example that the import keeps (the _PAR_Y copy is dropped).
GENES = sum(
    1 for line in STAR_LINES if line.startswith("ENSG") and "_PAR_Y" not in line.split("\t")[0]
)
SAMPLES = ("TCGA-Z9-A001-01A", "TCGA-Z9-A002-01A", "TCGA-Z9-A003-01A")
TPM = 6  # the tpm_unstranded column
UNSTRANDED = 3


def star_lines(scale: int) -> list[str]:
    """The example's lines with the unstranded counts of every gene multiplied by ``scale``."""
    lines = []
    for line in STAR_LINES:
        fields = line.rstrip("\n").split("\t")
        if line.startswith("ENSG"):
            fields[UNSTRANDED] = str(int(fields[UNSTRANDED]) * scale)
        lines.append("\t".join(fields) + "\n")
    return lines


def write_cohort(folder: Path, samples: tuple[str, ...] = SAMPLES) -> Path:
    """One STAR file per sample in the gdc-client layout (dir/File ID/File Name), and the sheet."""
    rows = []
    for index, sample in enumerate(samples, start=1):
        file_id = f"f{index}"
        name = f"{file_id}.rna_seq.augmented_star_gene_counts.tsv"
        (folder / file_id).mkdir(parents=True)
        (folder / file_id / name).write_text("".join(star_lines(index)))
        rows.append(
            [
                file_id,
                name,
                "Transcriptome Profiling",
                "Gene Expression Quantification",
                "TCGA-LIHC",
                sample[:12],
                sample,
                "Primary Tumor",
            ]
        )
    sheet = folder / "gdc_sample_sheet.tsv"
    pd.DataFrame(rows, columns=list(SAMPLE_SHEET_COLUMNS)).to_csv(sheet, sep="\t", index=False)
    return sheet


def star_file(folder: Path, index: int) -> Path:
    """The STAR file of the index-th sample (1-based) of write_cohort."""
    return folder / f"f{index}" / f"f{index}.rna_seq.augmented_star_gene_counts.tsv"


def without_row(sheet: Path, file_id: str) -> Path:
    """The sample sheet less one file's row (the fix the messages give), next to it."""
    table = pd.read_csv(sheet, sep="\t", dtype=str)
    fixed = sheet.with_name("fixed_sheet.tsv")
    table[table["File ID"] != file_id].to_csv(fixed, sep="\t", index=False)
    return fixed


def assert_rest_loads(sheet: Path, folder: Path, file_id: str, patients: int) -> None:
    """With the bad row removed, every other sample and every gene is read."""
    cohort = load_star_cohort(without_row(sheet, file_id), folder, progress=False)
    assert cohort.counts.shape == (GENES, patients)
    assert cohort.exclusions.empty


# --------------------------------------------------------------------------- TPM, not counts


def test_tpm_values_in_the_star_counts_column_name_the_file_patient_sample_and_fix(
    tmp_path: Path,
) -> None:
    sheet = write_cohort(tmp_path)
    path = star_file(tmp_path, 2)
    lines = []
    for line in path.read_text().splitlines(keepends=True):
        fields = line.rstrip("\n").split("\t")
        if line.startswith("ENSG"):
            fields[UNSTRANDED] = fields[TPM]  # an export that put TPM where counts belong
        lines.append("\t".join(fields) + "\n")
    path.write_text("".join(lines))
    with pytest.raises(CountsFormatError) as failure:
        load_star_cohort(sheet, tmp_path, progress=False)
    message = str(failure.value)
    assert message.startswith(
        f"{path}: patient TCGA-Z9-A002, sample TCGA-Z9-A002-01A (sample sheet line 3): "
        "column 'unstranded' has"
    )
    assert "non-integer count(s), first at gene 'ENSG00000000003.15'" in message
    assert "TPM, FPKM or normalised values" in message
    assert "Fix: give raw integer counts" in message
    assert_rest_loads(sheet, tmp_path, "f2", patients=2)


def test_tpm_matrix_instead_of_counts_names_the_file_sample_and_fix(tmp_path: Path) -> None:
    matrix = pd.DataFrame(
        {"TCGA-Z9-A001-01A": [10, 0, 7], "TCGA-Z9-A002-01A": [12.5, 0.25, 3.0]},
        index=pd.Index(["ENSG1", "ENSG2", "ENSG3"], name="gene_id"),
    )
    path = tmp_path / "tpm.tsv"
    matrix.to_csv(path, sep="\t")
    with pytest.raises(CountsFormatError) as failure:
        load_counts_matrix_cohort(path)
    message = str(failure.value)
    assert message.startswith(f"{path}: column 'TCGA-Z9-A002-01A' has 2 non-integer count(s)")
    assert "first at gene 'ENSG1' (value '12.5')" in message
    assert "Fix: give raw integer counts" in message and "never TPM or FPKM" in message
    matrix.drop(columns="TCGA-Z9-A002-01A").to_csv(path, sep="\t")
    assert load_counts_matrix_cohort(path).counts.shape == (3, 1)


# --------------------------------------------------------------------------- truncated files


def test_star_file_cut_in_the_middle_of_a_line_names_file_patient_and_fix(tmp_path: Path) -> None:
    sheet = write_cohort(tmp_path)
    path = star_file(tmp_path, 3)
    text = path.read_text()
    path.write_text(text[: text.rindex("\n", 0, len(text) - 1) + 30])
    with pytest.raises(CountsFormatError) as failure:
        load_star_cohort(sheet, tmp_path, progress=False)
    message = str(failure.value)
    assert message.startswith(
        f"{path}: patient TCGA-Z9-A003, sample TCGA-Z9-A003-01A (sample sheet line 4):"
    )
    assert "missing value(s)" in message and "the file ends early" in message
    assert "Fix: download or copy the file again" in message
    assert_rest_loads(sheet, tmp_path, "f3", patients=2)


def test_star_file_cut_at_a_line_end_names_the_missing_genes_patient_and_fix(
    tmp_path: Path,
) -> None:
    sheet = write_cohort(tmp_path)
    path = star_file(tmp_path, 2)
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-10]))
    lost = [line.split("\t")[0].split(".")[0] for line in lines[-10:]][:3]
    with pytest.raises(CountsFormatError) as failure:
        load_star_cohort(sheet, tmp_path, progress=False)
    message = str(failure.value)
    assert message.startswith(
        f"{path}: patient TCGA-Z9-A002, sample TCGA-Z9-A002-01A (sample sheet line 3): "
        "gene ids differ"
    )
    assert f"10 missing, e.g. {sorted(lost)}" in message
    assert "a truncated file or another gene model" in message
    assert "Fix: download or copy the file again, or remove its row" in message
    assert_rest_loads(sheet, tmp_path, "f2", patients=2)


def test_cut_gzip_star_file_names_file_patient_and_fix(tmp_path: Path) -> None:
    sheet = write_cohort(tmp_path)
    plain = star_file(tmp_path, 1)
    packed = gzip.compress(plain.read_bytes())
    path = plain.with_name(plain.name + ".gz")
    path.write_bytes(packed[: len(packed) // 2])
    plain.unlink()
    table = pd.read_csv(sheet, sep="\t", dtype=str)
    table.loc[0, "File Name"] = path.name
    table.to_csv(sheet, sep="\t", index=False)
    with pytest.raises(CountsFormatError) as failure:
        load_star_cohort(sheet, tmp_path, progress=False)
    message = str(failure.value)
    assert message.startswith(
        f"{path}: patient TCGA-Z9-A001, sample TCGA-Z9-A001-01A (sample sheet line 2): "
        "cannot be read"
    )
    assert "truncated or corrupt? Fix: download or copy the file again" in message
    assert_rest_loads(sheet, tmp_path, "f1", patients=2)


# --------------------------------------------------------------------------- duplicates


def test_two_files_of_one_sample_use_the_larger_library_and_list_the_other_with_how_to_choose(
    tmp_path: Path,
) -> None:
    # A re-sequenced aliquot: f1 and f2 are both TCGA-Z9-A001-01A (GDC has such pairs); f2
    # holds twice the reads. Behaviour kept: one is used, the other listed with the reason.
    sheet = write_cohort(tmp_path, (SAMPLES[0], SAMPLES[0], SAMPLES[1]))
    cohort = load_star_cohort(sheet, tmp_path, progress=False)
    assert cohort.counts.shape == (GENES, 2)
    assert cohort.samples.loc["TCGA-Z9-A001", "sample"] == "f2"
    assert cohort.exclusions[["sample", "patient_id"]].values.tolist() == [["f1", "TCGA-Z9-A001"]]
    reason = cohort.exclusions.loc[0, "reason"]
    assert reason.startswith(
        "another file of the same sample TCGA-Z9-A001-01A is used: f2 (larger library size"
    )
    assert reason.endswith("to use this one, remove the other's row from the sample sheet")


def test_one_file_named_for_two_samples_is_refused_naming_both_lines_and_fix(
    tmp_path: Path,
) -> None:
    # A flat folder and a copy-paste slip: rows 2 and 3 name the same file for two patients.
    sheet = write_cohort(tmp_path)
    table = pd.read_csv(sheet, sep="\t", dtype=str)
    for index in range(3):
        star_file(tmp_path, index + 1).rename(tmp_path / table.loc[index, "File Name"])
    table.loc[2, "File Name"] = table.loc[1, "File Name"]
    table.to_csv(sheet, sep="\t", index=False)
    with pytest.raises(CountsFormatError) as failure:
        load_star_cohort(sheet, tmp_path, progress=False)
    message = str(failure.value)
    path = tmp_path / table.loc[1, "File Name"]
    assert message.startswith(
        f"{path}: patient TCGA-Z9-A003, sample TCGA-Z9-A003-01A (sample sheet line 4): "
        "the same file as line 3"
    )
    assert "two samples would get the same counts" in message
    assert "Fix: give each row its own file" in message
    assert_rest_loads(sheet, tmp_path, "f3", patients=2)


def test_file_listed_twice_in_the_sample_sheet_names_both_lines_and_fix(tmp_path: Path) -> None:
    sheet = write_cohort(tmp_path)
    table = pd.read_csv(sheet, sep="\t", dtype=str)
    pd.concat([table, table.iloc[[0]]]).to_csv(sheet, sep="\t", index=False)
    with pytest.raises(CountsFormatError) as failure:
        load_star_cohort(sheet, tmp_path, progress=False)
    message = str(failure.value)
    assert message.startswith(
        f"{sheet}: File ID 'f1' is on lines [2, 5] (sample(s) ['TCGA-Z9-A001-01A'])"
    )
    assert "Fix: remove the repeated row" in message
    table.to_csv(sheet, sep="\t", index=False)
    assert load_star_cohort(sheet, tmp_path, progress=False).counts.shape == (GENES, 3)


def test_one_sample_in_two_counts_matrix_columns_names_both_columns_patient_and_fix(
    tmp_path: Path,
) -> None:
    # pandas would read the second column as "TCGA-Z9-A001-01A.1": the header is checked first.
    path = tmp_path / "matrix.tsv"
    path.write_text(
        "gene_id\tTCGA-Z9-A001-01A\tTCGA-Z9-A002-01A\tTCGA-Z9-A001-01A\n"
        "ENSG1\t10\t11\t12\nENSG2\t0\t1\t2\n"
    )
    with pytest.raises(CountsFormatError) as failure:
        load_counts_matrix_cohort(path)
    message = str(failure.value)
    assert message.startswith(
        f"{path}: patient TCGA-Z9-A001, sample 'TCGA-Z9-A001-01A' is the header of columns [2, 4]"
    )
    assert "Fix: keep one column per sample" in message
    path.write_text("gene_id\tTCGA-Z9-A001-01A\tTCGA-Z9-A002-01A\nENSG1\t10\t11\nENSG2\t0\t1\n")
    assert load_counts_matrix_cohort(path).counts.shape == (2, 2)


# --------------------------------------------------------------------------- missing file


def test_sample_sheet_naming_a_missing_file_names_the_file_patient_sample_and_fix(
    tmp_path: Path,
) -> None:
    sheet = write_cohort(tmp_path)
    path = star_file(tmp_path, 2)
    path.unlink()
    with pytest.raises(FileNotFoundError) as failure:
        load_star_cohort(sheet, tmp_path, progress=False)
    message = str(failure.value)
    assert message.startswith(
        f"{path}: patient TCGA-Z9-A002, sample TCGA-Z9-A002-01A (sample sheet line 3): "
        f"file f2 not found there nor as {tmp_path / path.name}"
    )
    assert "Fix: download it again" in message and "or remove its row" in message
    assert_rest_loads(sheet, tmp_path, "f2", patients=2)

"""hccrad.radiogenomics counts, sample_sheet and expression: readers, barcodes, gene filter, VST."""

from __future__ import annotations

import gzip
import random
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydeseq2.preprocessing import deseq2_norm

from hccrad.cohorts.rnaseq_counts import (
    CountsFormatError,
    parse_tcga_barcode,
    read_counts_matrix,
    read_star_counts,
    unversioned_gene_ids,
)
from hccrad.cohorts.rnaseq_samples import SAMPLE_SHEET_COLUMNS, read_sample_sheet
from hccrad.radiogenomics.expression import (
    filter_expressed_genes,
    load_counts_matrix_cohort,
    load_star_cohort,
    select_patient_samples,
    variance_stabilise,
)

GDC_DATA = Path(__file__).parent / "data" / "gdc"
STAR_EXAMPLE = GDC_DATA / "gdc_augmented_star_gene_counts_format_example.tsv"
HTSEQ_EXAMPLE = GDC_DATA / "gdc_legacy_htseq_counts_example_50genes.gz"
STAR_LINES = STAR_EXAMPLE.read_text().splitlines(keepends=True)


def write_star_variant(path: Path, lines: list[str]) -> Path:
    """Write a STAR file made of the given lines."""
    path.write_text("".join(lines))
    return path


def replace_field(line: str, column: int, value: str) -> str:
    """A tab-separated line with one field replaced."""
    fields = line.rstrip("\n").split("\t")
    fields[column] = value
    return "\t".join(fields) + "\n"


# --- STAR reader on the real GDC example ------------------------------------------------------


def test_star_reader_real_file_keep_par_y() -> None:
    star = read_star_counts(STAR_EXAMPLE, par_y="keep")
    # 96 gene rows in the file (SOURCES.md says 97; see tests/data/gdc/PROVENANCE.md).
    assert len(star.counts) == 96
    # CD99's chrX row and its chrY (PAR_Y) copy stay distinct.
    assert {"ENSG00000002586", "ENSG00000002586_PAR_Y"} <= set(star.counts.index)
    assert not star.counts.index.str.contains(r"\.").any()
    assert not star.counts.index.str.startswith("N_").any()
    assert star.counts.index.is_unique
    assert star.counts.dtype == np.int64
    assert star.counts["ENSG00000000003"] == 429
    assert star.gene_model == "GENCODE v36"
    assert star.summary.to_dict() == {
        "N_unmapped": 38463,
        "N_multimapping": 438275,
        "N_noFeature": 2115417,
        "N_ambiguous": 318096,
    }
    assert star.genes.loc["ENSG00000000003"].to_dict() == {
        "symbol": "TSPAN6",
        "biotype": "protein_coding",
    }


def test_star_reader_drops_par_y_by_default_and_picks_count_column() -> None:
    star = read_star_counts(STAR_EXAMPLE, count_column="stranded_second")
    assert len(star.counts) == 95
    assert not star.counts.index.str.endswith("_PAR_Y").any()
    assert star.counts["ENSG00000000005"] == 2
    assert star.summary["N_noFeature"] == 2168227


def test_version_stripping_rule() -> None:
    ids = [
        "ENSG00000002586.20",
        "ENSG00000002586.20_PAR_Y",
        "SIMG00000000001.3",
        "AC000061.1",
        "7157",
    ]
    kept_ids, keep = unversioned_gene_ids(ids, par_y="keep")
    assert kept_ids.tolist() == [
        "ENSG00000002586",
        "ENSG00000002586_PAR_Y",
        "SIMG00000000001",
        "AC000061.1",
        "7157",
    ]
    assert keep.all()
    assert unversioned_gene_ids(ids)[1].tolist() == [True, False, True, True, True]


# --- malformed STAR input ---------------------------------------------------------------------


def test_star_missing_column(tmp_path: Path) -> None:
    lines = ["\t".join(line.split("\t")[:5] + line.split("\t")[6:]) for line in STAR_LINES]
    path = write_star_variant(tmp_path / "missing.tsv", lines)
    with pytest.raises(CountsFormatError, match=r"missing\.tsv.*missing column.*stranded_second"):
        read_star_counts(path)


def test_star_non_integer_count(tmp_path: Path) -> None:
    lines = STAR_LINES.copy()
    lines[6] = replace_field(lines[6], 3, "429.5")
    path = write_star_variant(tmp_path / "fractional.tsv", lines)
    with pytest.raises(
        CountsFormatError, match=r"fractional\.tsv.*unstranded.*non-integer.*ENSG00000000003"
    ):
        read_star_counts(path)


def test_star_text_in_count_column(tmp_path: Path) -> None:
    lines = STAR_LINES.copy()
    lines[7] = replace_field(lines[7], 4, "NA")
    path = write_star_variant(tmp_path / "text.tsv", lines)
    with pytest.raises(CountsFormatError, match=r"stranded_first.*not a number.*ENSG00000000005"):
        read_star_counts(path)


def test_star_negative_count(tmp_path: Path) -> None:
    lines = STAR_LINES.copy()
    lines[8] = replace_field(lines[8], 3, "-3")
    path = write_star_variant(tmp_path / "negative.tsv", lines)
    with pytest.raises(CountsFormatError, match=r"negative\.tsv.*negative count"):
        read_star_counts(path)


def test_star_truncated_mid_line(tmp_path: Path) -> None:
    text = "".join(STAR_LINES)
    path = tmp_path / "truncated.tsv"
    path.write_text(text[: text.rindex("\n", 0, len(text) - 1) + 30])
    with pytest.raises(CountsFormatError, match=r"truncated\.tsv.*truncated"):
        read_star_counts(path)


def test_star_truncated_gzip(tmp_path: Path) -> None:
    packed = gzip.compress("".join(STAR_LINES).encode())
    path = tmp_path / "cut.tsv.gz"
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(CountsFormatError, match=r"cut\.tsv\.gz.*truncated or corrupt"):
        read_star_counts(path)


def test_star_duplicated_ids(tmp_path: Path) -> None:
    path = write_star_variant(tmp_path / "dup.tsv", [*STAR_LINES, STAR_LINES[10]])
    with pytest.raises(CountsFormatError, match=r"dup\.tsv.*duplicated gene id"):
        read_star_counts(path)


def test_star_same_gene_two_versions_is_duplicate(tmp_path: Path) -> None:
    other_version = STAR_LINES[10].replace("ENSG00000000460.17", "ENSG00000000460.16")
    path = write_star_variant(tmp_path / "versions.tsv", [*STAR_LINES, other_version])
    with pytest.raises(CountsFormatError, match="after removing the version"):
        read_star_counts(path)


def test_star_missing_gene_model_line(tmp_path: Path) -> None:
    path = write_star_variant(tmp_path / "nomodel.tsv", STAR_LINES[1:])
    with pytest.raises(CountsFormatError, match=r"nomodel\.tsv.*gene-model"):
        read_star_counts(path)


def test_star_missing_summary_rows(tmp_path: Path) -> None:
    path = write_star_variant(tmp_path / "nosummary.tsv", STAR_LINES[:2] + STAR_LINES[6:])
    with pytest.raises(CountsFormatError, match="N_ambiguous"):
        read_star_counts(path)


# --- plain counts matrices --------------------------------------------------------------------


def test_legacy_htseq_reads_as_plain_counts() -> None:
    counts, genes = read_counts_matrix(HTSEQ_EXAMPLE)
    assert counts.shape == (50, 1)
    assert counts.columns.tolist() == ["gdc_legacy_htseq_counts_example_50genes"]
    assert counts.iloc[0, 0] == 3039
    assert counts.index[0] == "ENSG00000000003"
    assert not counts.index.str.contains(r"\.").any()
    assert genes["biotype"].isna().all()


def test_htseq_counter_rows_are_excluded(tmp_path: Path) -> None:
    counters = "__no_feature\t10\n__ambiguous\t5\n__too_low_aQual\t1\n__not_aligned\t2\n"
    path = tmp_path / "with_counters.htseq.counts.gz"
    path.write_bytes(gzip.compress(gzip.decompress(HTSEQ_EXAMPLE.read_bytes()) + counters.encode()))
    counts, _ = read_counts_matrix(path)
    assert counts.shape == (50, 1)
    assert not counts.index.str.startswith("__").any()


def test_matrix_with_annotation_and_errors(tmp_path: Path) -> None:
    matrix = pd.DataFrame(
        {
            "gene_id": ["ENSG1.1", "ENSG2.3", "ENSG3.1"],
            "gene_name": ["A", "B", "C"],
            "gene_type": ["protein_coding", "lncRNA", "protein_coding"],
            "TCGA-DD-A1EB-01A": [5, 0, 12],
        }
    )
    path = tmp_path / "matrix.tsv"
    matrix.to_csv(path, sep="\t", index=False)
    counts, genes = read_counts_matrix(path)
    assert counts.index.tolist() == ["ENSG1", "ENSG2", "ENSG3"]
    assert genes["biotype"].tolist() == ["protein_coding", "lncRNA", "protein_coding"]
    matrix["TCGA-DD-A1EB-01A"] = [5, 2.5, 12]
    matrix.to_csv(path, sep="\t", index=False)
    with pytest.raises(
        CountsFormatError, match=r"matrix\.tsv.*TCGA-DD-A1EB-01A.*non-integer.*ENSG2"
    ):
        read_counts_matrix(path)


# --- barcodes and one sample per patient ------------------------------------------------------


def test_parse_tcga_barcode() -> None:
    parsed = parse_tcga_barcode("TCGA-DD-A1EB-01A-11R-A131-07")
    assert parsed is not None
    assert (parsed.patient_id, parsed.sample_type, parsed.vial) == ("TCGA-DD-A1EB", "01", "A")
    assert parse_tcga_barcode("TCGA-DD-A1EB-11") is not None
    assert parse_tcga_barcode("TCGA-DD-A1EB") is None
    assert parse_tcga_barcode("HCC_001") is None


DUPLICATE_CASES = {
    # key: (barcode, library size)
    "a_tumour": ("TCGA-DD-A1EB-01A-11R-A131-07", 10.0),
    "a_normal": ("TCGA-DD-A1EB-11A-11R-A131-07", 50.0),
    "b_recurrent": ("TCGA-BC-A10T-02A-11R-A131-07", 10.0),
    "c_vial_b": ("TCGA-DD-A39V-01B-11R-A131-07", 99.0),
    "c_vial_a": ("TCGA-DD-A39V-01A-11R-A131-07", 1.0),
    "d_small": ("TCGA-DD-A119-01A-11R-A131-07", 5.0),
    "d_large": ("TCGA-DD-A119-01A-21R-A131-07", 8.0),
    "e_second": ("TCGA-DD-A1EC-01A-21R-A131-07", 7.0),
    "e_first": ("TCGA-DD-A1EC-01A-11R-A131-07", 7.0),
    "f_normal_only": ("TCGA-DD-A1EE-11A-11R-A131-07", 7.0),
    "g_same_2": ("TCGA-DD-A39X-01A", 3.0),
    "g_same_1": ("TCGA-DD-A39X-01A", 3.0),
}


def select(keys: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run the selection on a subset of the cases above, in the given order."""
    barcodes = pd.Series({key: DUPLICATE_CASES[key][0] for key in keys})
    sizes = pd.Series({key: DUPLICATE_CASES[key][1] for key in keys})
    return select_patient_samples(barcodes, sizes)


def test_duplicate_resolution_and_exclusions() -> None:
    selection, exclusions = select(list(DUPLICATE_CASES))
    assert selection["sample"].to_dict() == {
        "TCGA-BC-A10T": "b_recurrent",
        "TCGA-DD-A119": "d_large",
        "TCGA-DD-A1EB": "a_tumour",
        "TCGA-DD-A1EC": "e_first",
        "TCGA-DD-A39V": "c_vial_a",
        "TCGA-DD-A39X": "g_same_1",
    }
    assert list(exclusions.columns) == ["sample", "patient_id", "reason"]
    reasons = exclusions.set_index("sample")["reason"].to_dict()
    assert set(reasons) == {
        "a_normal",
        "c_vial_b",
        "d_small",
        "e_second",
        "f_normal_only",
        "g_same_2",
    }
    assert "sample type 11 (Solid Tissue Normal) not used" in reasons["a_normal"]
    assert "vial A preferred over B" in reasons["c_vial_b"]
    assert "larger library size (8 > 5)" in reasons["d_small"]
    assert "lexicographically first barcode" in reasons["e_second"]
    assert "same barcode: lexicographically first sample key" in reasons["g_same_2"]
    assert exclusions.set_index("sample").loc["f_normal_only", "patient_id"] == "TCGA-DD-A1EE"


def test_selection_does_not_depend_on_input_order() -> None:
    keys = list(DUPLICATE_CASES)
    expected = select(keys)
    random.Random(7).shuffle(keys)
    shuffled = select(keys)
    pd.testing.assert_frame_equal(expected[0], shuffled[0])
    pd.testing.assert_frame_equal(expected[1], shuffled[1])


def test_selection_without_library_sizes() -> None:
    barcodes = pd.Series({"x": "TCGA-DD-A1EB-01A-21R", "y": "TCGA-DD-A1EB-01A-11R"})
    selection, exclusions = select_patient_samples(barcodes)
    assert selection["sample"].tolist() == ["y"]
    assert exclusions["reason"].str.contains("lexicographically first barcode").all()


def test_selection_rejects_non_tcga_barcode() -> None:
    with pytest.raises(CountsFormatError, match=r"HCC_001.*not a TCGA sample barcode"):
        select_patient_samples(pd.Series({"x": "HCC_001"}))


def test_counts_matrix_cohort(tmp_path: Path) -> None:
    matrix = pd.DataFrame(
        {
            "TCGA-DD-A1EB-01A": [5, 1],
            "TCGA-DD-A1EB-11A": [7, 2],
            "TCGA-DD-A39V-01A": [3, 3],
        },
        index=pd.Index(["ENSG1.2", "ENSG2.2"], name="gene_id"),
    )
    path = tmp_path / "counts.csv"
    matrix.to_csv(path)
    cohort = load_counts_matrix_cohort(path)
    assert cohort.counts.columns.tolist() == ["TCGA-DD-A1EB", "TCGA-DD-A39V"]
    assert cohort.counts.columns.name == "patient_id"
    assert cohort.counts["TCGA-DD-A1EB"].tolist() == [5, 1]
    assert cohort.exclusions["sample"].tolist() == ["TCGA-DD-A1EB-11A"]


# --- sample sheet + STAR files ----------------------------------------------------------------


def write_cohort(tmp_path: Path) -> Path:
    """A GDC-client layout of 3 STAR files (two of one patient) and their sample sheet."""
    rows = [
        ("f1", "TCGA-DD-A1EB-01A", "Primary Tumor", 1),
        ("f2", "TCGA-DD-A1EB-11A", "Solid Tissue Normal", 2),
        ("f3", "TCGA-DD-A39V-01A", "Primary Tumor", 3),
    ]
    sheet = []
    for file_id, sample_id, sample_type, scale in rows:
        name = f"{file_id}.rna_seq.augmented_star_gene_counts.tsv"
        lines = [
            replace_field(line, 3, str(int(line.split("\t")[3]) * scale))
            if line.startswith("ENSG")
            else line
            for line in STAR_LINES
        ]
        (tmp_path / file_id).mkdir()
        write_star_variant(tmp_path / file_id / name, lines)
        sheet.append(
            [
                file_id,
                name,
                "Transcriptome Profiling",
                "Gene Expression Quantification",
                "TCGA-LIHC",
                sample_id[:12],
                sample_id,
                sample_type,
            ]
        )
    sheet_path = tmp_path / "gdc_sample_sheet.tsv"
    pd.DataFrame(sheet, columns=list(SAMPLE_SHEET_COLUMNS)).to_csv(
        sheet_path, sep="\t", index=False
    )
    return sheet_path


def test_star_cohort_from_sample_sheet(tmp_path: Path) -> None:
    sheet_path = write_cohort(tmp_path)
    cohort = load_star_cohort(sheet_path, tmp_path, progress=False)
    assert cohort.counts.shape == (95, 2)
    assert cohort.counts.columns.tolist() == ["TCGA-DD-A1EB", "TCGA-DD-A39V"]
    assert cohort.counts.loc["ENSG00000000003"].tolist() == [429, 3 * 429]
    assert cohort.samples["sample"].tolist() == ["f1", "f3"]
    assert cohort.exclusions["sample"].tolist() == ["f2"]
    assert cohort.genes.loc["ENSG00000000003", "symbol"] == "TSPAN6"


def test_star_cohort_detects_gene_set_mismatch(tmp_path: Path) -> None:
    sheet_path = write_cohort(tmp_path)
    path = tmp_path / "f3" / "f3.rna_seq.augmented_star_gene_counts.tsv"
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:-10]))
    with pytest.raises(CountsFormatError, match=r"f3\.rna_seq.*gene ids differ"):
        load_star_cohort(sheet_path, tmp_path, progress=False)


def test_sample_sheet_errors(tmp_path: Path) -> None:
    sheet_path = write_cohort(tmp_path)
    sheet = pd.read_csv(sheet_path, sep="\t")
    sheet.drop(columns="Sample ID").to_csv(tmp_path / "bad.tsv", sep="\t", index=False)
    with pytest.raises(CountsFormatError, match=r"bad\.tsv.*Sample ID"):
        read_sample_sheet(tmp_path / "bad.tsv")
    sheet.assign(**{"Case ID": "TCGA-DD-A39V"}).to_csv(
        tmp_path / "mixed.tsv", sep="\t", index=False
    )
    with pytest.raises(CountsFormatError, match=r"mixed\.tsv.*TCGA-DD-A1EB-01A.*Case ID"):
        read_sample_sheet(tmp_path / "mixed.tsv")
    shutil.rmtree(tmp_path / "f2")
    with pytest.raises(FileNotFoundError, match=r"f2.*TCGA-DD-A1EB-11A"):
        load_star_cohort(sheet_path, tmp_path, progress=False)


# --- gene filter and VST ----------------------------------------------------------------------


def test_filter_expressed_genes() -> None:
    counts = pd.DataFrame(
        [[20, 30, 0, 0], [20, 30, 40, 50], [20, 30, 40, 50], [0, 0, 0, 11]],
        index=["g1", "g2", "g3", "g4"],
    )
    genes = pd.DataFrame(
        {
            "symbol": list("ABCD"),
            "biotype": ["protein_coding", "lncRNA", "protein_coding", "protein_coding"],
        },
        index=counts.index,
    )
    kept, report = filter_expressed_genes(counts, genes, min_count=10, min_fraction=0.5)
    assert kept.index.tolist() == ["g1", "g3"]
    assert report["kept"].tolist() == [True, False, True, False]
    assert report.loc["g2", "reason"].startswith("biotype")
    assert report.loc["g4", "reason"].startswith("fewer than 50%")
    with pytest.raises(ValueError, match="biotype"):
        filter_expressed_genes(counts, genes.assign(biotype=None))


def simulated_nb_counts(n_genes: int, n_samples: int, seed: int) -> pd.DataFrame:
    """Negative binomial counts with DESeq2-like mean-dispersion trend and sample depths."""
    rng = np.random.default_rng(seed)
    means = np.exp(rng.normal(4, 1.5, n_genes))[:, None] * np.exp(rng.normal(0, 0.3, n_samples))
    dispersion = 0.05 + 1 / means.mean(axis=1, keepdims=True)
    values = rng.negative_binomial(1 / dispersion, 1 / (1 + means * dispersion))
    return pd.DataFrame(
        values,
        index=[f"ENSG{i:011d}" for i in range(n_genes)],
        columns=[f"TCGA-XX-{i:04d}" for i in range(n_samples)],
    )


@pytest.mark.parametrize("trend_genes", [None, 100])
def test_vst_monotone_in_normalised_counts(trend_genes: int | None) -> None:
    counts = simulated_nb_counts(300, 8, seed=3)
    result = variance_stabilise(counts, trend_genes=trend_genes)
    assert result.n_trend_genes == (300 if trend_genes is None else 100)
    assert result.expression.shape == counts.shape
    assert np.isfinite(result.expression.to_numpy()).all()
    reference_size_factors = deseq2_norm(counts.T.to_numpy())[1]
    np.testing.assert_allclose(result.size_factors.to_numpy(), reference_size_factors)
    normalised = counts / result.size_factors
    for gene in counts.index[:50]:
        order = np.argsort(normalised.loc[gene].to_numpy(), kind="stable")
        assert np.all(np.diff(result.expression.loc[gene].to_numpy()[order]) >= 0)
    # For well-expressed genes the VST approaches log2 of the normalised counts.
    high = normalised.min(axis=1) > 500
    difference = result.expression[high] - np.log2(normalised[high])
    assert difference.abs().to_numpy().max() < 0.2


def test_vst_trend_subset_close_to_full_fit() -> None:
    counts = simulated_nb_counts(300, 8, seed=4)
    full = variance_stabilise(counts, trend_genes=None).expression
    subset = variance_stabilise(counts, trend_genes=100).expression
    assert (full - subset).abs().to_numpy().max() < 0.1

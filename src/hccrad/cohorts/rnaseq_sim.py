"""Simulated TCGA-LIHC-like RNA-seq with Hallmark pathways planted on imaging traits.

Counts are negative binomial (gamma-Poisson) around a log-linear mean:

    log mean[g, s] = baseline[g] + coexpression[g, s] + biological noise[g, s]
                     + sum over planted pathways p containing g of beta[g, p] * trait_p[s]

Baselines are the real mean log TPM of TCGA-LIHC tumours (resources/tcga_lihc, Linnorm), so
the expression distribution is a liver tumour's. beta is set so that the correlation between
the trait and the gene's log mean equals the configured ``strength`` (before count noise).
Files are written in GDC's augmented STAR-counts layout with a GDC-style sample sheet.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hccrad.cohorts.rnaseq_counts import STAR_COLUMNS, STAR_SUMMARY_ROWS
from hccrad.cohorts.rnaseq_samples import SAMPLE_SHEET_COLUMNS
from hccrad.core.genesets import read_gmt
from hccrad.core.seeding import rng_for

SAMPLE_TYPES: dict[str, str] = {"01": "Primary Tumor", "11": "Solid Tissue Normal"}


def gene_universe(
    tpm_path: str | Path, gmt_path: str | Path, n_genes: int, n_noncoding: int, seed: int
) -> pd.DataFrame:
    """Genes to simulate: every Hallmark gene, other real genes up to ``n_genes``, ncRNAs."""
    tpm = pd.read_csv(tpm_path, index_col=0)
    tumour = tpm.loc[:, tpm.columns.str.endswith("-01A")]
    symbol = tumour.index.str.split("|").str[0]
    entrez = tumour.index.str.split("|").str[1].astype(np.int64)
    known = symbol != "?"
    baseline = pd.DataFrame(
        {
            "gene_name": symbol[known],
            "entrez": entrez[known],
            "log_tpm": np.log(tumour.to_numpy()[known] + 0.5).mean(axis=1),
        }
    ).drop_duplicates("gene_name")
    hallmark = sorted({g for genes in read_gmt(gmt_path).values() for g in genes})
    rng = rng_for(seed, "rnaseq", "universe")
    in_hallmark = baseline["gene_name"].isin(hallmark)
    n_others = max(n_genes - n_noncoding - len(hallmark), 0)
    others = baseline[~in_hallmark].sample(
        n=min(n_others, int((~in_hallmark).sum())), random_state=int(rng.integers(2**31 - 1))
    )
    # Hallmark genes absent from the Linnorm table get a baseline drawn from the table's own
    # distribution (they are real genes with newer symbols).
    missing = sorted(set(hallmark) - set(baseline["gene_name"]))
    filler = pd.DataFrame(
        {
            "gene_name": missing,
            "entrez": -1,
            "log_tpm": rng.choice(baseline["log_tpm"].to_numpy(), size=len(missing)),
        }
    )
    coding = pd.concat([baseline[in_hallmark], filler, others], ignore_index=True)
    coding["gene_type"] = "protein_coding"
    noncoding = pd.DataFrame(
        {
            "gene_name": [f"SIMLNC{i:05d}" for i in range(1, n_noncoding + 1)],
            "entrez": -1,
            # Long non-coding RNAs are mostly lowly expressed.
            "log_tpm": rng.normal(-1.0, 1.2, n_noncoding),
            "gene_type": rng.choice(
                ["lncRNA", "misc_RNA", "snRNA"], n_noncoding, p=[0.8, 0.1, 0.1]
            ),
        }
    )
    genes = pd.concat([coding, noncoding], ignore_index=True).sort_values("gene_name")
    # Simulated ids live in their own namespace (SIMG...), never a real Ensembl id, with a
    # version suffix as in GENCODE so readers exercise version stripping.
    genes["gene_id"] = [f"SIMG{i:011d}.{1 + i % 9}" for i in range(1, len(genes) + 1)]
    genes["length_bp"] = np.round(np.exp(rng.normal(np.log(2500.0), 0.6, len(genes)))).astype(int)
    return genes.set_index("gene_id")[["gene_name", "gene_type", "entrez", "log_tpm", "length_bp"]]


def planted_effects(
    genes: pd.DataFrame,
    gene_sets: Mapping[str, Sequence[str]],
    planted: Sequence[Mapping[str, Any]],
    other_sd: np.ndarray,
    responsive_fraction: float,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Per planted pathway and member gene: the trait it follows and its coefficient beta."""
    rows = []
    for spec in planted:
        members = set(gene_sets[spec["pathway"]])
        in_universe = np.flatnonzero(genes["gene_name"].isin(members).to_numpy())
        chosen = in_universe[rng.random(in_universe.size) < responsive_fraction]
        if chosen.size == 0:  # the truth files and the log would claim a plant that is not
            raise ValueError(
                f"planted pathway {spec['pathway']!r}: none of its {in_universe.size} gene(s) "
                f"in the simulated universe was drawn to follow {spec['trait']!r} "
                f"(rnaseq.responsive_fraction = {responsive_fraction}). Fix: raise "
                "simulate.radiogenomics.rnaseq.responsive_fraction or plant a larger gene set."
            )
        sign = 1.0 if spec.get("direction", "positive") == "positive" else -1.0
        strength = float(spec["strength"])
        for g in chosen:
            # corr(trait, beta*trait + e) = beta / sqrt(beta^2 + var(e)) = strength.
            beta = sign * strength * other_sd[g] / np.sqrt(max(1 - strength**2, 1e-9))
            rows.append(
                {
                    "gene_id": genes.index[g],
                    "gene_name": genes["gene_name"].iat[g],
                    "pathway": spec["pathway"],
                    "trait": spec["trait"],
                    "strength": strength,
                    "beta": beta,
                }
            )
    return pd.DataFrame(
        rows, columns=["gene_id", "gene_name", "pathway", "trait", "strength", "beta"]
    )


def log_means(
    genes: pd.DataFrame,
    traits: pd.DataFrame,
    rnaseq_cfg: Mapping[str, Any],
    effects: pd.DataFrame,
    rng: np.random.Generator,
) -> np.ndarray:
    """Genes x samples log mean expression with co-expression, noise and planted effects."""
    n_genes, n_samples = len(genes), len(traits)
    n_factors = rnaseq_cfg["coexpression_factors"]
    loadings = rng.normal(0, rnaseq_cfg["coexpression_sd"], (n_genes, n_factors))
    # Sparse loadings: each gene belongs to a few co-expression modules only.
    loadings *= rng.random((n_genes, n_factors)) < 0.3
    scores = rng.standard_normal((n_factors, n_samples))
    biological_sd = rnaseq_cfg["biological_sd"] * np.exp(rng.normal(0, 0.25, n_genes))
    log_mean = genes["log_tpm"].to_numpy()[:, None] + loadings @ scores
    log_mean = log_mean + biological_sd[:, None] * rng.standard_normal((n_genes, n_samples))
    if len(effects):
        row = genes.index.get_indexer(effects["gene_id"])
        z = traits[effects["trait"]].to_numpy().T  # planted-effects x samples
        np.add.at(log_mean, row, effects["beta"].to_numpy()[:, None] * z)
    return log_mean


def other_log_sd(genes: pd.DataFrame, rnaseq_cfg: Mapping[str, Any]) -> np.ndarray:
    """The expected SD of a gene's log mean without planted effects (for beta's scale)."""
    coexpression_var = 0.3 * rnaseq_cfg["coexpression_factors"] * rnaseq_cfg["coexpression_sd"] ** 2
    return np.sqrt(np.full(len(genes), rnaseq_cfg["biological_sd"] ** 2 + coexpression_var))


def sample_counts(
    log_mean: np.ndarray,
    lengths: np.ndarray,
    library_sizes: np.ndarray,
    dispersion: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Negative-binomial read counts: expected reads follow TPM x length, scaled per library."""
    weight = np.exp(log_mean) * lengths[:, None]
    mean = weight / weight.sum(axis=0, keepdims=True) * library_sizes[None, :]
    # Gamma-Poisson mixture = NB with variance mean + dispersion * mean^2 (technical part).
    shape = 1.0 / dispersion
    return rng.poisson(rng.gamma(shape, mean / shape)).astype(np.int64)


def star_table(
    counts: np.ndarray, genes: pd.DataFrame, library_size: int, rng: np.random.Generator
) -> pd.DataFrame:
    """One sample's GDC augmented STAR table (summary rows first), from its gene counts."""
    length_kb = genes["length_bp"].to_numpy() / 1e3
    rate = counts / length_kb
    tpm = rate / rate.sum() * 1e6
    coding = (genes["gene_type"] == "protein_coding").to_numpy()
    # GDC: FPKM normalises by protein-coding reads; FPKM-UQ by their 75th percentile.
    fpkm = counts * 1e9 / (counts[coding].sum() * genes["length_bp"].to_numpy())
    upper_quartile = np.percentile(counts[coding], 75)
    fpkm_uq = counts * 1e9 / (max(upper_quartile, 1.0) * genes["length_bp"].to_numpy())
    first = rng.binomial(counts, 0.5)
    table = pd.DataFrame(
        {
            "gene_id": genes.index,
            "gene_name": genes["gene_name"].to_numpy(),
            "gene_type": genes["gene_type"].to_numpy(),
            "unstranded": counts,
            "stranded_first": first,
            "stranded_second": counts - first,
            "tpm_unstranded": tpm,
            "fpkm_unstranded": fpkm,
            "fpkm_uq_unstranded": fpkm_uq,
        }
    )
    # Unmapped, multimapping, no-feature and ambiguous reads as fractions of the library.
    fractions = dict(zip(STAR_SUMMARY_ROWS, (0.02, 0.05, 0.08, 0.02), strict=True))
    summary = pd.DataFrame(
        [
            {
                "gene_id": name,
                "unstranded": (value := int(library_size * f * rng.uniform(0.7, 1.3))),
                "stranded_first": int(value * rng.uniform(0.9, 2.1)),
                "stranded_second": int(value * rng.uniform(0.9, 2.1)),
            }
            for name, f in fractions.items()
        ]
    )
    return pd.concat([summary, table], ignore_index=True)[list(STAR_COLUMNS)]


def write_star_file(path: str | Path, table: pd.DataFrame, gene_model: str) -> None:
    """Write a STAR table exactly as GDC does: a gene-model comment line, then the TSV."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        handle.write(f"# gene-model: {gene_model}\n")
        table.to_csv(handle, sep="\t", index=False, float_format="%.4f", lineterminator="\n")


def plan_samples(
    patient_ids: Sequence[str], rnaseq_cfg: Mapping[str, Any], rng: np.random.Generator
) -> pd.DataFrame:
    """Which RNA-seq files exist: a tumour per patient, some normals, some re-sequenced aliquots."""
    rows = []
    for patient in patient_ids:
        rows.append({"patient_id": patient, "sample_type": "01", "vial": "A", "replicate": 1})
        if rng.random() < rnaseq_cfg["normal_fraction"]:
            rows.append({"patient_id": patient, "sample_type": "11", "vial": "A", "replicate": 1})
        if rng.random() < rnaseq_cfg["duplicate_fraction"]:
            rows.append({"patient_id": patient, "sample_type": "01", "vial": "A", "replicate": 2})
    plan = pd.DataFrame(rows)
    plan["sample_id"] = plan["patient_id"] + "-" + plan["sample_type"] + plan["vial"]
    plan["aliquot_id"] = [
        f"{s}-{10 + r:02d}R-A{i:03X}-07"
        for i, (s, r) in enumerate(zip(plan["sample_id"], plan["replicate"], strict=True))
    ]
    plan["file_id"] = [
        str(uuid.UUID(int=int(rng.integers(2**63)) << 64 | int(rng.integers(2**63)), version=4))
        for _ in range(len(plan))
    ]
    plan["file_name"] = plan["file_id"] + ".rna_seq.augmented_star_gene_counts.tsv"
    return plan


def simulate_rnaseq(
    traits: pd.DataFrame,
    rnaseq_cfg: Mapping[str, Any],
    planted: Sequence[Mapping[str, Any]],
    gmt_path: str | Path,
    tpm_path: str | Path,
    out_dir: str | Path,
    seed: int,
    cohort: str,
) -> dict[str, pd.DataFrame]:
    """Write one STAR file per sample (GDC client layout) and return sheet, genes and truth."""
    genes = gene_universe(
        tpm_path, gmt_path, rnaseq_cfg["n_genes"], rnaseq_cfg["n_noncoding"], seed
    )
    gene_sets = read_gmt(gmt_path)
    effects = planted_effects(
        genes,
        gene_sets,
        planted,
        other_log_sd(genes, rnaseq_cfg),
        rnaseq_cfg["responsive_fraction"],
        rng_for(seed, cohort, "planted"),
    )
    plan = plan_samples(list(traits.index), rnaseq_cfg, rng_for(seed, cohort, "samples"))
    patient_traits = traits.loc[plan["patient_id"]].reset_index(drop=True)
    # Normal tissue does not carry the tumour's imaging phenotype: no planted effect there.
    patient_traits.loc[plan["sample_type"].to_numpy() == "11", :] = 0.0
    rng = rng_for(seed, cohort, "counts")
    log_mean = log_means(genes, patient_traits, rnaseq_cfg, effects, rng)
    low, high = rnaseq_cfg["library_size_millions"]
    library_sizes = np.round(rng.uniform(low, high, len(plan)) * 1e6)
    counts = sample_counts(
        log_mean, genes["length_bp"].to_numpy(), library_sizes, rnaseq_cfg["dispersion"], rng
    )
    out_dir = Path(out_dir)
    for j, row in plan.iterrows():
        table = star_table(counts[:, j], genes, int(library_sizes[j]), rng)
        write_star_file(out_dir / row["file_id"] / row["file_name"], table, "GENCODE v36")
    sample_sheet = pd.DataFrame(
        {
            "File ID": plan["file_id"],
            "File Name": plan["file_name"],
            "Data Category": "Transcriptome Profiling",
            "Data Type": "Gene Expression Quantification",
            "Project ID": "TCGA-LIHC",
            "Case ID": plan["patient_id"],
            "Sample ID": plan["sample_id"],
            "Sample Type": plan["sample_type"].map(SAMPLE_TYPES),
        }
    )[list(SAMPLE_SHEET_COLUMNS)]
    return {"sample_sheet": sample_sheet, "genes": genes, "effects": effects, "plan": plan}

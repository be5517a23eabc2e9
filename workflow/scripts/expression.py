"""RNA-seq of the radiogenomics cohort: one sample per patient, expressed genes, DESeq2 VST."""

from hccrad.core.runlog import log_to
from hccrad.radiogenomics.expression import (
    filter_expressed_genes,
    load_counts_matrix_cohort,
    load_star_cohort,
    variance_stabilise,
    write_expression,
)

log = log_to(snakemake.log[0])
settings = snakemake.params.expression
if hasattr(snakemake.input, "matrix"):
    cohort = load_counts_matrix_cohort(
        snakemake.input.matrix, sample_types=settings["sample_types"]
    )
else:
    cohort = load_star_cohort(
        snakemake.input.sample_sheet,
        snakemake.input.files,
        count_column=settings["count_column"],
        sample_types=settings["sample_types"],
        progress=False,
    )
counts, genes = filter_expressed_genes(
    cohort.counts,
    cohort.genes,
    min_count=settings["min_count"],
    min_fraction=settings["min_fraction"],
    biotypes=settings["biotypes"] or None,
)
vst = variance_stabilise(
    counts, trend_genes=settings["vst_trend_genes"] or None, n_cpus=snakemake.threads
)
write_expression(counts, snakemake.output.counts)
write_expression(vst.expression, snakemake.output.vst)
genes.rename_axis("gene_id").to_csv(
    snakemake.output.genes, sep="\t", float_format="%.4g", lineterminator="\n"
)
samples = cohort.samples.assign(size_factor=vst.size_factors)
samples.to_csv(snakemake.output.samples, sep="\t", float_format="%.6g", lineterminator="\n")
cohort.exclusions.to_csv(snakemake.output.exclusions, sep="\t", index=False, lineterminator="\n")
log.info(
    "%d patients (%d samples excluded); %d of %d genes kept; VST fit %s on %d genes",
    counts.shape[1],
    len(cohort.exclusions),
    counts.shape[0],
    len(genes),
    vst.fit_type,
    vst.n_trend_genes,
)

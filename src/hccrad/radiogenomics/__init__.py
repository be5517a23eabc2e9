"""Radiogenomics: RNA-seq counts and VST, feature-gene correlation, the gene list, enrichment."""

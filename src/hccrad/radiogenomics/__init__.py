"""Radiogenomics: expression and VST, feature-gene correlation, the gene list, enrichment."""

"""Radiomics: PyRadiomics extraction per region, robustness (ICC) and per-centre harmonisation."""

"""Response models: clinical, radiomics, deep and fused classifiers, fitted and applied."""

"""The workflow's tables: evaluation, survival stratification, table one, the model card."""

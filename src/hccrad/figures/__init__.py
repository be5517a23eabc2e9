"""Every plotting function and the house style; matplotlib is imported nowhere else."""

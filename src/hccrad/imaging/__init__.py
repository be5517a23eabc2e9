"""Imaging: read and check scans and masks, resample, normalise, crop; the prepared files."""

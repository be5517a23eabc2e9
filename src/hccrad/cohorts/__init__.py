"""Cohorts: the sheet; simulation; a user's table; downloads (IDC, GDC); DICOM and RNA-seq files."""

"""Cohorts: the sheet, simulation, import of a user's table, downloads (IDC, GDC) and DICOM."""

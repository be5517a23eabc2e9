"""Bad-input cases: each names the file, the patient or row, and the fix (issue 26)."""

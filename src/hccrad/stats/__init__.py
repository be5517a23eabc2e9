"""Statistics as pure functions: discrimination, calibration, decision curves, survival."""

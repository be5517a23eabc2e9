"""hccrad: imaging, deep learning and radiogenomics of TACE response in hepatocellular carcinoma."""

# The same as pyproject.toml's version (tests/test_environment.py holds them together).
__version__ = "0.2.0"

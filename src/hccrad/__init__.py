"""hccrad: imaging, deep learning and radiogenomics of TACE response in hepatocellular carcinoma."""

__version__ = "0.1.0"

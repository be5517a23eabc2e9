"""Segmentation: the liver/tumour network, its threshold baseline, and its evaluation."""

"""Deep learning: tumour crops, networks, training, architecture selection, prediction, Grad-CAM."""

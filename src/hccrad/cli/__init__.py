"""Console entry points (``hccrad predict``): wiring, like the workflow's scripts.

The one layer above hccrad.figures besides workflow/scripts: it parses arguments, calls the
library and hands it the drawing functions, so the library itself never imports the figures.
"""

"""A trained model bundle: the fitted models of one endpoint, packed to score new patients.

``manifest`` knows the bundle's format and versions, ``store`` writes and loads a bundle folder,
``predict`` scores new patients with it by the very functions the workflow runs.
"""

"""What a Grad-CAM figure shows, as arrays: kept apart from ``hccrad.deep.explain`` so that
drawing the figure does not import torch and MONAI (~3 s per figure job; issue 30).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class GradCamPanels:
    """What the Grad-CAM figure shows: per patient the mid-tumour slice, its map and outline."""

    patients: tuple[str, ...]
    titles: tuple[str, ...]
    images: np.ndarray  # (n, y, x) the chosen phase's slice
    cams: np.ndarray  # (n, y, x) Grad-CAM, 0-1 per patient
    tumour: np.ndarray  # (n, y, x) bool tumour outline (all False without masks)
    extents_mm: np.ndarray  # (n, 4) imshow extents in mm (voxels where the spacing is unknown)
    phase: str
    architecture: str
    layer: str
    has_spacing: bool

    def save(self, path: str | Path) -> Path:
        """Write the panels as one .npz: the Grad-CAM figure is drawn from it alone."""
        path = Path(path)
        with path.open("wb") as handle:
            np.savez_compressed(
                handle,
                patients=np.array(self.patients),
                titles=np.array(self.titles),
                images=self.images,
                cams=self.cams,
                tumour=self.tumour,
                extents_mm=self.extents_mm,
                meta=np.array([self.phase, self.architecture, self.layer]),
                has_spacing=np.array(self.has_spacing),
            )
        return path

    @classmethod
    def load(cls, path: str | Path) -> GradCamPanels:
        """Read panels written by ``save``."""
        with np.load(path, allow_pickle=False) as data:
            phase, architecture, layer = (str(v) for v in data["meta"])
            return cls(
                tuple(str(p) for p in data["patients"]),
                tuple(str(t) for t in data["titles"]),
                data["images"],
                data["cams"],
                data["tumour"],
                data["extents_mm"],
                phase,
                architecture,
                layer,
                bool(data["has_spacing"]),
            )

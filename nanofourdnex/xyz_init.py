"""Sloped-plane initialisation of the first XYZ frame (§4.3, Eq. 7).

    X^init_{i,j} = ( 2j/(W−1) − 1,  2i/(H−1) − 1,  2i/(H−1) − 1 )                    (7)

i is the row (0 at the top), j the column (0 at the left). x spans [−1, 1] left to right;
y and z both span [−1, 1] top to bottom, so "depth" z grows with the row index. Together
with the normalised XYZ maps of the data (also in [−1, 1]) this is the paper's stable
starting guess for the first frame's geometry: a plane sloping away from the viewer.
"""

from __future__ import annotations

import torch


def sloped_plane(height: int, width: int) -> torch.Tensor:
    """Eq. 7: the (H, W, 3) float32 sloped-plane XYZ map X^init."""
    if height < 2 or width < 2:
        raise ValueError(f"sloped_plane needs height >= 2 and width >= 2, got ({height}, {width})")
    rows = torch.arange(height, dtype=torch.float64)
    cols = torch.arange(width, dtype=torch.float64)
    y = 2 * rows / (height - 1) - 1  # 2i/(H−1) − 1
    x = 2 * cols / (width - 1) - 1  # 2j/(W−1) − 1
    yy, xx = torch.meshgrid(y, x, indexing="ij")  # (H, W)
    return torch.stack([xx, yy, yy], dim=-1).float()  # (H, W, 3): z = y

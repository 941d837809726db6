"""Sloped-plane initialisation of the first XYZ frame (§4.3, Eq. 7), as the public 4DNeX code builds it.

    paper, Eq. 7:   X^init_{i,j} = ( 2j/(W−1) − 1,  2i/(H−1) − 1,  2i/(H−1) − 1 )           (7)
    paper, text:    "depth values gradually increase from the bottom to the top of the image"
    public code:    X^init_{i,j} = ( 2j/(W−1) − 1,  2i/(H−1) − 1,  1 − 2i/(H−1) )

i is the row (0 at the top), j the column (0 at the left). The formula and the sentence disagree
on z: the formula's z grows towards the bottom row. The official code (`generate_uniform_pointmap`
in core/finetune/models/wan_i2v/sft_trainer.py, then ×2 − 1) follows the sentence: z = +1 on the
top row, −1 on the bottom one. Its released weights were trained on that plane, so this project
follows the code: x spans [−1, 1] left to right, y spans [−1, 1] top to bottom, z = −y.

Spec: specs/eq07_xyz_init.md · Tests: tests/test_eq07_xyz_init.py (-m eq07)
"""

from __future__ import annotations

import torch


def sloped_plane(height: int, width: int) -> torch.Tensor:
    """The (H, W, 3) float32 sloped-plane XYZ map X^init (Eq. 7 with the public code's depth sign)."""
    if height < 2 or width < 2:
        raise ValueError(f"sloped_plane needs height >= 2 and width >= 2, got ({height}, {width})")
    rows = torch.arange(height, dtype=torch.float64)
    cols = torch.arange(width, dtype=torch.float64)
    x = 2 * cols / (width - 1) - 1  # 2j/(W−1) − 1
    y = 2 * rows / (height - 1) - 1  # 2i/(H−1) − 1
    z = 1 - 2 * rows / (height - 1)  # 1 − 2i/(H−1): depth grows from the bottom to the top
    yy, xx = torch.meshgrid(y, x, indexing="ij")  # (H, W)
    zz = z[:, None].expand(height, width)
    return torch.stack([xx, yy, zz], dim=-1).float()  # (H, W, 3)

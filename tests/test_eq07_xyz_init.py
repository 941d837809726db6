"""Eq. 7, the sloped-plane first-frame XYZ, with the public code's depth sign. Spec: specs/eq07_xyz_init.md"""

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from nanofourdnex.paper.xyz_init import sloped_plane

pytestmark = pytest.mark.eq07
sides = st.integers(2, 64)


def test_sloped_plane_matches_hand_values():
    # H = 3, W = 5: x = 2j/4 − 1 ∈ {−1, −.5, 0, .5, 1}; y = 2i/2 − 1 ∈ {−1, 0, 1}; z = 1 − 2i/2 ∈ {1, 0, −1}.
    plane = sloped_plane(3, 5)
    assert plane.shape == (3, 5, 3) and plane.dtype == torch.float32
    assert plane[0, 0].tolist() == [-1.0, -1.0, 1.0]  # top-left: the far end of the plane
    assert plane[1, 3].tolist() == [0.5, 0.0, 0.0]
    assert plane[2, 4].tolist() == [1.0, 1.0, -1.0]  # bottom-right: the near end


def test_building_the_plane_warns_about_nothing():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. torch.meshgrid without an explicit indexing
        sloped_plane(3, 5)


def official_uniform_pointmap(height: int, width: int) -> np.ndarray:
    """The public code's construction, re-derived from its description: x, y = linspace(−1, 1) over columns
    and rows, z = 1 − linspace(0, 1) over rows, each axis min-max scaled to [0, 1] (z with + 1e-8 in the
    range), then ×2 − 1 where it is used."""
    x, y = np.linspace(-1, 1, width), np.linspace(-1, 1, height)
    xv, yv = np.meshgrid(x, y)
    zv = np.repeat(1 - np.linspace(0, 1, height)[:, None], width, axis=1)
    unit = np.stack([(xv + 1) / 2, (yv + 1) / 2, (zv - zv.min()) / (np.ptp(zv) + 1e-8)], -1)
    return unit * 2 - 1


@given(sides, sides)
def test_plane_equals_the_public_codes_construction(height, width):
    np.testing.assert_allclose(
        sloped_plane(height, width).numpy(), official_uniform_pointmap(height, width), atol=1e-6
    )


@given(sides, sides)
def test_plane_spans_the_unit_cube_from_top_left_to_bottom_right(height, width):
    plane = sloped_plane(height, width)
    assert plane.shape == (height, width, 3)
    assert plane.min() == -1 and plane.max() == 1
    assert plane[0, 0].tolist() == [-1, -1, 1] and plane[-1, -1].tolist() == [1, 1, -1]


@given(sides, sides)
def test_depth_increases_from_the_bottom_row_to_the_top_and_is_constant_along_a_row(height, width):
    z = sloped_plane(height, width)[..., 2]
    assert (z[:-1] > z[1:]).all()  # row i − 1 (higher in the image) is farther than row i
    assert (z == z[:, :1]).all()


@given(sides, sides)
def test_z_is_minus_y_and_x_depends_on_column_only(height, width):
    plane = sloped_plane(height, width)
    assert torch.equal(plane[..., 2], -plane[..., 1])
    assert (plane[..., 1] == plane[:, :1, 1]).all() and (plane[1:, :, 1] > plane[:-1, :, 1]).all()
    assert (plane[..., 0] == plane[:1, :, 0]).all()
    assert (plane[:, 1:, 0] > plane[:, :-1, 0]).all()


@given(sides, sides)
def test_plane_is_left_right_antisymmetric_in_x(height, width):
    x = sloped_plane(height, width)[..., 0].double()
    torch.testing.assert_close(x.flip(1), -x, atol=1e-6, rtol=0)


@pytest.mark.parametrize("shape", [(1, 5), (5, 1), (0, 0)])
def test_too_small_grids_are_rejected(shape):
    with pytest.raises(ValueError, match="height >= 2 and width >= 2"):
        sloped_plane(*shape)

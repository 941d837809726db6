"""§3.1-3.3 quality filters: luminance, MCV, HCPR and top-r % selection. Spec: specs/quality_filters.md"""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from nanofourdnex.paper.quality import (
    LUMA_WEIGHTS,
    high_confidence_ratio,
    luminance,
    luminance_ok,
    mean_confidence,
    mean_luminance,
    select_by_confidence,
    top_fraction,
)

pytestmark = pytest.mark.quality

unit = st.floats(0, 1)
colours = st.tuples(unit, unit, unit)
image_shapes = st.tuples(st.integers(1, 3), st.integers(1, 5), st.integers(1, 5))  # (T, H, W)
percentages = st.floats(0.01, 100)


@st.composite
def videos(draw, dtype=np.float64) -> np.ndarray:
    shape = (*draw(image_shapes), 3)
    elements = st.integers(0, 255) if dtype == np.uint8 else unit
    return draw(arrays(dtype, shape, elements=elements))


@st.composite
def confidence_maps(draw) -> np.ndarray:
    return draw(arrays(np.float64, draw(image_shapes), elements=st.floats(1, 50)))  # DUSt3R's conf ≥ 1


def test_luminance_matches_hand_values():
    rgb = np.array([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1], [0.5, 0.25, 1.0]])
    np.testing.assert_allclose(
        luminance(rgb), [0.299, 0.587, 0.114, 1.0, 0.1495 + 0.14675 + 0.114], rtol=1e-15
    )
    u8 = np.array([[255, 0, 0], [0, 0, 0], [255, 255, 255]], dtype=np.uint8)
    np.testing.assert_allclose(luminance(u8), [0.299, 0.0, 1.0], rtol=1e-6)


@given(colours, image_shapes)
def test_luminance_of_a_constant_image_is_the_formula_value(colour, shape):
    r, g, b = colour
    image = np.broadcast_to(np.array(colour), (*shape, 3))
    expected = 0.299 * r + 0.587 * g + 0.114 * b
    np.testing.assert_allclose(luminance(image), np.full(shape, expected), rtol=1e-12, atol=1e-15)
    assert mean_luminance(image) == pytest.approx(expected, rel=1e-12, abs=1e-15)


@given(videos(), videos(), st.floats(-3, 3), st.floats(-3, 3))
def test_luminance_is_linear(x, y, a, b):
    if x.shape != y.shape:
        y = np.resize(y, x.shape)
    np.testing.assert_allclose(luminance(a * x + b * y), a * luminance(x) + b * luminance(y), atol=1e-12)


def test_float_luminance_keeps_the_dtype_and_one_pixel_is_a_video():
    pixel = np.array([0.5, 0.25, 1.0], dtype=np.float32)  # (3,): one pixel
    assert luminance(pixel).dtype == np.float32 and luminance(pixel).shape == ()
    assert luminance(pixel) == pytest.approx(0.1495 + 0.14675 + 0.114, rel=1e-6)
    assert mean_luminance(pixel) == pytest.approx(0.1495 + 0.14675 + 0.114, rel=1e-6)


def test_float32_means_are_accumulated_in_float64():
    # A million float32 values of 0.1: a float32 running sum is off in the 7th digit, a float64 one is not.
    video = np.full((1, 1000, 1000, 3), 0.1, dtype=np.float32)
    assert mean_luminance(video) == pytest.approx(float(np.float32(0.1)) * LUMA_WEIGHTS.sum(), rel=1e-12)
    conf = np.full((1, 1000, 1000), 1.1, dtype=np.float32)
    assert mean_confidence(conf) == pytest.approx(float(np.float32(1.1)), rel=1e-12)


@given(unit, image_shapes)
def test_grey_maps_to_its_own_value(c, shape):
    grey = np.full((*shape, 3), c)
    np.testing.assert_allclose(luminance(grey), c, rtol=1e-15, atol=1e-16)


@given(videos(np.uint8))
def test_uint8_and_float_agree(video):
    as_float = video / 255.0
    assert luminance(video).dtype == np.float32
    np.testing.assert_allclose(luminance(video), luminance(as_float), rtol=1e-6, atol=1e-6)
    assert mean_luminance(video) == pytest.approx(mean_luminance(as_float), rel=1e-12, abs=1e-15)


@given(st.one_of(videos(), videos(np.uint8)))
def test_mean_luminance_is_the_mean_of_per_pixel_luminance(video):
    value = mean_luminance(video)
    assert type(value) is float and 0 <= value <= 1
    assert value == pytest.approx(float(luminance(video).astype(np.float64).mean()), rel=1e-6, abs=1e-7)


def test_luminance_range_filter_is_inclusive_and_rejects_extremes():
    black, white = np.zeros((2, 4, 4, 3), np.uint8), np.full((2, 4, 4, 3), 255, np.uint8)
    assert luminance_ok(mean_luminance(black), low=0.1, high=0.9) is False
    assert luminance_ok(mean_luminance(white), low=0.1, high=0.9) is False
    assert luminance_ok(0.5, low=0.1, high=0.9) is True
    assert luminance_ok(0.1, low=0.1, high=0.9) is True and luminance_ok(0.9, low=0.1, high=0.9) is True
    np.testing.assert_array_equal(luminance_ok(np.array([0.05, 0.5, 0.95]), 0.1, 0.9), [False, True, False])


def test_luminance_range_filter_rejects_bad_range_and_nan():
    with pytest.raises(ValueError, match="low <= high"):
        luminance_ok(0.5, low=0.9, high=0.1)
    with pytest.raises(ValueError, match="^mean luminance is NaN$"):
        luminance_ok(math.nan, low=0.1, high=0.9)


def test_a_range_of_one_value_keeps_exactly_that_value():
    assert luminance_ok(0.5, low=0.5, high=0.5) is True
    assert luminance_ok(0.4, low=0.5, high=0.5) is False


@given(st.floats(-100, 100), image_shapes)
def test_mcv_of_a_constant_map_is_the_constant(value, shape):
    assert mean_confidence(np.full(shape, value)) == pytest.approx(value, rel=1e-14, abs=1e-14)


def test_mcv_and_hcpr_match_hand_values():
    conf = np.array([[[1.0, 2.0], [3.0, 4.0]], [[5.0, 6.0], [7.0, 8.0]]])  # (T=2, H=2, W=2)
    assert mean_confidence(conf) == 4.5
    assert high_confidence_ratio(conf, tau=2.0) == 6 / 8  # strictly above: 2.0 itself is not counted
    assert high_confidence_ratio(conf, tau=7.5) == 1 / 8


@given(confidence_maps())
def test_mcv_lies_between_the_extreme_confidences(conf):
    assert conf.min() - 1e-12 <= mean_confidence(conf) <= conf.max() + 1e-12


@given(confidence_maps(), st.floats(0, 60), st.floats(0, 60))
def test_hcpr_is_a_fraction_non_increasing_in_tau(conf, tau_a, tau_b):
    low, high = sorted((tau_a, tau_b))
    ratio_low, ratio_high = high_confidence_ratio(conf, low), high_confidence_ratio(conf, high)
    assert 0 <= ratio_high <= ratio_low <= 1
    assert ratio_low == np.count_nonzero(conf > low) / conf.size


@given(confidence_maps())
def test_hcpr_is_zero_from_the_max_and_one_below_the_min(conf):
    assert high_confidence_ratio(conf, float(conf.max())) == 0.0  # strictly greater: the max itself fails
    assert high_confidence_ratio(conf, float(np.nextafter(conf.min(), -np.inf))) == 1.0


@given(st.integers(1, 100), st.lists(st.integers(-1000, 1000), min_size=1, max_size=60))
def test_top_fraction_keeps_exactly_ceil_r_n_over_100_and_the_highest(r, scores):
    scores = np.array(scores, dtype=np.float64)
    mask = top_fraction(scores, r)
    assert mask.dtype == bool and mask.shape == scores.shape
    assert mask.sum() == -(-r * len(scores) // 100)  # ⌈r·N/100⌉ in integer arithmetic
    if not mask.all():
        assert scores[mask].min() >= scores[~mask].max()


@pytest.mark.parametrize(
    ("r", "n", "kept"),
    [(7, 100, 7), (1.1, 3000, 33), (0.1, 1000, 1), (33.4, 3, 2), (100, 7, 7), (1e-6, 5, 1), (50, 5, 3)],
)
def test_top_fraction_rounds_up_without_float_artefacts(r, n, kept):
    # In floats 7/100·100 = 7.000000000000001 and 1.1·3000/100 = 33.00000000000001: ⌈·⌉ would add a clip.
    assert top_fraction(np.arange(n, dtype=float), r).sum() == kept


def test_top_fraction_breaks_ties_in_favour_of_the_earlier_clip():
    np.testing.assert_array_equal(
        top_fraction(np.array([1.0, 5, 5, 5, 0]), 40), [False, True, True, False, False]
    )


@given(st.integers(1, 100), st.lists(st.integers(0, 3), min_size=1, max_size=300))
def test_top_fraction_keeps_the_earliest_of_the_clips_tied_at_the_boundary(r, scores):
    scores = np.array(scores, dtype=np.float64)
    mask = top_fraction(scores, r)
    tied = np.flatnonzero(scores == scores[mask].min())  # clips with the lowest kept score, in order
    assert mask[tied].tolist() == sorted(mask[tied].tolist(), reverse=True)  # kept ones all come first


@given(
    percentages,
    st.lists(st.integers(-1000, 1000), min_size=1, max_size=60),
    st.sampled_from([lambda x: 2 * x + 7, lambda x: x**3, lambda x: np.exp(x / 100), np.arctan]),
)
def test_top_fraction_is_invariant_to_a_monotone_transform(r, scores, transform):
    scores = np.array(scores, dtype=np.float64)
    np.testing.assert_array_equal(top_fraction(transform(scores), r), top_fraction(scores, r))


@given(percentages, st.lists(st.tuples(unit, unit), min_size=1, max_size=60))
def test_confidence_selection_is_the_intersection_of_both_top_fractions(r, pairs):
    mcv, hcpr = np.array(pairs).T
    kept = select_by_confidence(mcv, hcpr, r)
    np.testing.assert_array_equal(kept, top_fraction(mcv, r) & top_fraction(hcpr, r))
    assert kept.sum() <= top_fraction(mcv, r).sum()


@given(percentages, st.lists(st.integers(-1000, 1000), min_size=1, max_size=60, unique=True))
def test_agreeing_metrics_keep_the_top_fraction_and_opposed_ones_only_their_overlap(r, scores):
    scores = np.array(scores, dtype=np.float64)
    np.testing.assert_array_equal(
        select_by_confidence(scores, np.exp(scores / 1000), r), top_fraction(scores, r)
    )
    kept = top_fraction(scores, r).sum()
    assert select_by_confidence(scores, -scores, r).sum() == max(0, 2 * kept - len(scores))


def test_confidence_selection_matches_a_hand_example():
    # Top 50 % of 4 clips = 2 per metric: MCV keeps {0, 1}, HCPR keeps {1, 2}; only clip 1 has both.
    mcv = np.array([0.9, 0.8, 0.1, 0.2])
    hcpr = np.array([0.3, 0.9, 0.8, 0.1])
    np.testing.assert_array_equal(select_by_confidence(mcv, hcpr, 50), [False, True, False, False])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: luminance(np.zeros((4, 4, 4))), r"rgb must be \(\.\.\., 3\)"),
        (lambda: luminance(np.zeros((4, 3), dtype=np.int64)), "uint8 .* or float"),
        (lambda: mean_luminance(np.zeros((0, 4, 3))), "at least one pixel"),
        (lambda: mean_confidence(np.ones((4, 4))), r"conf must be a non-empty \(T, H, W\)"),
        (lambda: mean_confidence(np.ones((0, 4, 4))), r"conf must be a non-empty \(T, H, W\)"),
        (lambda: mean_confidence(np.array([[[1.0, math.nan]]])), "^conf contains NaN$"),
        (lambda: high_confidence_ratio(np.array([[[1.0, math.nan]]]), 1.0), "^conf contains NaN$"),
        (lambda: high_confidence_ratio(np.ones((2, 2, 2)), math.nan), "^tau must be a number, got NaN$"),
        (lambda: top_fraction(np.array([]), 50), r"non-empty \(N,\)"),
        (lambda: top_fraction(np.ones((2, 2)), 50), r"non-empty \(N,\)"),
        (lambda: top_fraction(np.array([1.0, math.nan]), 50), "^scores contain NaN$"),
        (lambda: top_fraction(np.ones(4), 0), r"percentage in \(0, 100\]"),
        (lambda: top_fraction(np.ones(4), 100.5), r"percentage in \(0, 100\]"),
        (lambda: top_fraction(np.ones(4), math.nan), r"percentage in \(0, 100\]"),
        (lambda: select_by_confidence(np.ones(4), np.ones(3), 50), "same"),
    ],
)
def test_malformed_inputs_are_rejected(call, message):
    with pytest.raises(ValueError, match=message):
        call()

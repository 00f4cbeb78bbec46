"""Halo + Hann stitching (paper eq. 4-9 with the border fix of PAPER_NOTES.md)."""

from __future__ import annotations

import numpy as np
import pytest

from xdownscale.errors import ConfigError, DimensionError
from xdownscale.tiling.patches import cut_patches, patch_starts
from xdownscale.tiling.stitch import Stitcher, StitchPlan, patch_weights, stitch, window_1d

torch = pytest.importorskip("torch")

P = 16
SHAPES = [(16, 16), (37, 23), (23, 37), (40, 51)]
GEOMETRY = [(s, h) for s in (2, 4, 8) for h in (0, 2, 4)]  # all satisfy stride <= 16 - 2h


def fixed_hann(n, N):
    """Eq. 5 on N + 2 points, shifted by one so that both end zeros fall outside the core."""
    return 0.5 * (1 - np.cos(2 * np.pi * (n + 1) / (N + 1)))


def paper_hann(n, N):
    """Eq. 5 exactly as printed (zero at both ends)."""
    return 0.5 * (1 - np.cos(2 * np.pi * n / (N - 1))) if N > 1 else np.ones_like(n, float)


def brute_force(patches, starts, shape, halo, w=fixed_hann, eps=1e-12):
    """Eq. 4-9 patch by patch, pixel indices spelled out as in the paper."""
    H_img, W_img = shape
    S = np.zeros(shape)
    Z = np.zeros(shape)
    for Y, (y0, x0) in zip(patches, starts, strict=True):
        top = 0 if y0 == 0 else halo
        bottom = 0 if y0 + P == H_img else halo
        left = 0 if x0 == 0 else halo
        right = 0 if x0 + P == W_img else halo
        n_row, n_col = P - top - bottom, P - left - right
        ys = np.arange(y0 + top, y0 + P - bottom)
        xs = np.arange(x0 + left, x0 + P - right)
        W = np.outer(w(ys - (y0 + top), n_row), w(xs - (x0 + left), n_col))
        S[np.ix_(ys, xs)] += W * Y[np.ix_(ys - y0, xs - x0)]
        Z[np.ix_(ys, xs)] += W
    return S / np.maximum(Z, eps), Z


def test_window_1d():
    for n in (1, 2, 8, 12, 16):
        w = window_1d(n)
        np.testing.assert_allclose(w, fixed_hann(np.arange(n), n), atol=1e-15)
        assert (w > 0).all()
        np.testing.assert_allclose(w, w[::-1])
    np.testing.assert_array_equal(window_1d(5, "boxcar"), np.ones(5))
    with pytest.raises(ConfigError, match="window"):
        window_1d(5, "hamming")


def test_paper_window_leaves_corners_without_weight():
    # Why the fix exists: with eq. 5 as printed the image corner gets Z = 0.
    shape = (37, 23)
    starts = patch_starts(shape, patch=P, stride=2)
    _, Z = brute_force(np.ones((len(starts), P, P)), starts, shape, 4, w=paper_hann)
    assert Z[0, 0] == 0 and Z[-1, -1] == 0
    assert stitch(np.ones((len(starts), P, P)), starts, shape)[1].min() > 0


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(("stride", "halo"), GEOMETRY)
def test_constant_patches_give_the_constant_everywhere(shape, stride, halo):
    starts = patch_starts(shape, patch=P, stride=stride)
    image, weight = stitch(np.full((len(starts), P, P), 2.5), starts, shape, halo=halo)
    assert (weight > 0).all()
    np.testing.assert_allclose(image, 2.5, rtol=1e-12)
    for corner in (image[0, 0], image[0, -1], image[-1, 0], image[-1, -1]):
        assert corner == pytest.approx(2.5)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(("stride", "halo"), GEOMETRY)
def test_consistent_patches_rebuild_the_image(shape, stride, halo):
    image = np.random.default_rng(0).normal(size=shape)
    starts = patch_starts(shape, patch=P, stride=stride)
    got, _ = stitch(cut_patches(image, starts, P), starts, shape, halo=halo)
    np.testing.assert_allclose(got, image, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", [(37, 23), (40, 51)])
@pytest.mark.parametrize(("stride", "halo"), [(2, 4), (3, 2), (8, 0), (12, 4)])
def test_matches_brute_force_eq_4_to_9(shape, stride, halo):
    rng = np.random.default_rng(1)
    starts = patch_starts(shape, patch=P, stride=stride)
    patches = rng.random((len(starts), P, P))
    image, weight = stitch(patches, starts, shape, halo=halo)
    ref_image, ref_weight = brute_force(patches, starts, shape, halo)
    np.testing.assert_allclose(weight, ref_weight, rtol=1e-12, atol=1e-14)
    covered = ref_weight > 0
    np.testing.assert_allclose(image[covered], ref_image[covered], rtol=1e-10)
    assert np.isnan(image[~covered]).all()


def test_patch_weights_vs_brute_force():
    shape = (37, 23)
    starts = patch_starts(shape, patch=P, stride=5)
    weights = patch_weights(starts, shape, patch=P, halo=3)
    for W, (y0, x0) in zip(weights, starts, strict=True):
        one = np.zeros((1, P, P))
        one[0] = 1.0
        # the brute force's Z of a single all-ones patch is that patch's weight map
        _, Z = brute_force(one, [(y0, x0)], shape, 3)
        np.testing.assert_allclose(W, Z[y0 : y0 + P, x0 : x0 + P], atol=1e-15)
    interior = weights[(starts[:, 0] > 0) & (starts[:, 0] + P < shape[0])]
    assert (interior[:, :3] == 0).all() and (interior[:, -3:] == 0).all()


def test_uncovered_pixels_are_nan_not_zero():
    # stride 12 > core 8: starts 0, 12, 24 leave rows and columns 12-15 and 24-27 in halos only.
    shape = (40, 40)
    starts = patch_starts(shape, patch=P, stride=12)
    image, weight = stitch(np.ones((len(starts), P, P)), starts, shape, halo=4)
    for gap in (slice(12, 16), slice(24, 28)):
        assert np.isnan(image[gap]).all() and (weight[gap] == 0).all()
        assert np.isnan(image[:, gap]).all() and (weight[:, gap] == 0).all()
    assert np.allclose(image[:12, :12], 1.0) and np.allclose(image[16:24, 16:24], 1.0)


def test_nan_in_halo_ignored_nan_in_core_propagates():
    shape = (37, 23)
    starts = patch_starts(shape, patch=P, stride=2)
    patches = np.ones((len(starts), P, P))
    inside = (starts > 0).all(1) & (starts[:, 0] + P < 37) & (starts[:, 1] + P < 23)
    interior = np.flatnonzero(inside)
    i = interior[0]
    patches[i, 0, 0] = np.nan  # halo pixel: not part of eq. 7
    image, _ = stitch(patches, starts, shape)
    assert np.isfinite(image).all()
    patches[i, 8, 8] = np.nan  # core pixel: missing stays missing
    image, _ = stitch(patches, starts, shape)
    y, x = starts[i] + 8
    assert np.isnan(image[y, x]) and np.isfinite(image).sum() == image.size - 1


def test_order_and_batch_split_invariance():
    rng = np.random.default_rng(2)
    shape = (40, 51)
    starts = patch_starts(shape, patch=P, stride=2)
    patches = rng.random((len(starts), 3, P, P))
    ref, ref_w = stitch(patches, starts, shape)
    perm = rng.permutation(len(starts))
    got, got_w = stitch(patches[perm], starts[perm], shape)
    np.testing.assert_allclose(got, ref, rtol=1e-12)
    np.testing.assert_allclose(got_w, ref_w, rtol=1e-12)
    acc = Stitcher(shape, patch=P, halo=4, channels=3)
    for part in np.array_split(perm, [5, 6, 100, 300]):
        acc.add(patches[part], starts[part])
    got, got_w = acc.result()
    assert got.shape == (3, *shape)
    np.testing.assert_allclose(got, ref, rtol=1e-12)
    np.testing.assert_allclose(got_w, ref_w, rtol=1e-12)


@pytest.mark.parametrize("channels", [None, 2])
def test_numpy_equals_torch(channels):
    rng = np.random.default_rng(3)
    shape = (37, 23)
    starts = patch_starts(shape, patch=P, stride=2)
    lead = () if channels is None else (channels,)
    patches = rng.random((len(starts), *lead, P, P))
    ref, ref_w = stitch(patches, starts, shape)
    got, got_w = stitch(torch.from_numpy(patches), starts, shape)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-12)
    np.testing.assert_allclose(got_w.numpy(), ref_w, rtol=1e-12)
    got32, _ = stitch(torch.from_numpy(patches).float(), starts, shape)
    assert got32.dtype == torch.float32
    np.testing.assert_allclose(got32.numpy(), ref, rtol=1e-5)
    ref32, _ = stitch(patches.astype(np.float32), starts, shape)
    assert ref32.dtype == np.float32
    half, _ = stitch(torch.from_numpy(patches).half(), starts, shape)  # summed in fp32
    assert half.dtype == torch.float16
    np.testing.assert_allclose(half.float().numpy(), ref, atol=2e-3)
    acc = Stitcher(shape, patch=P, like=torch.zeros(1, dtype=torch.float64))
    acc.add(patches, starts)  # NumPy batches, accumulated as torch like `like`
    got_acc, _ = acc.result()
    assert isinstance(got_acc, torch.Tensor)
    np.testing.assert_allclose(got_acc.numpy(), ref, rtol=1e-12)


def test_plan_cut_and_fuse_round_trip():
    rng = np.random.default_rng(4)
    shape = (37, 23)
    starts = patch_starts(shape, patch=P, stride=2)
    plan = StitchPlan(starts, shape, patch=P, halo=4)
    assert len(plan) == len(starts) and plan.covered.all()
    image = rng.random((2, *shape))
    cut = plan.cut(image)
    np.testing.assert_array_equal(cut, cut_patches(image, starts, P))
    fused, weight = plan.stitch(cut)
    np.testing.assert_allclose(fused, image, rtol=1e-12)
    np.testing.assert_allclose(weight, plan.weight)
    weight[...] = 0  # the returned weight is the caller's, not the plan's
    assert plan.covered.all() and plan.stitch(cut)[1].min() > 0
    # torch: a per-step fusion is stitch then cut, on the tensor's device
    noisy = torch.from_numpy(rng.random((len(starts), P, P)))
    fused_t, _ = plan.stitch(noisy)
    again = plan.cut(fused_t)
    assert isinstance(again, torch.Tensor) and again.shape == noisy.shape
    np.testing.assert_allclose(fused_t.numpy(), plan.stitch(noisy.numpy())[0], rtol=1e-12)
    # fusing consistent patches changes nothing
    np.testing.assert_allclose(plan.stitch(again)[0].numpy(), fused_t.numpy(), rtol=1e-12)


def test_stitcher_empty_and_errors():
    image, weight = Stitcher((20, 20)).result()
    assert np.isnan(image).all() and (weight == 0).all()
    starts = patch_starts((20, 20), patch=P, stride=4)
    with pytest.raises(ConfigError, match="halo"):
        stitch(np.ones((len(starts), P, P)), starts, (20, 20), halo=8)
    with pytest.raises(DimensionError, match="patches for"):
        stitch(np.ones((len(starts) - 1, P, P)), starts, (20, 20))
    with pytest.raises(DimensionError, match="outside"):
        stitch(np.ones((len(starts), P, P)), starts, (18, 20))
    with pytest.raises(DimensionError):
        StitchPlan(starts, (20, 20)).cut(np.ones((21, 20)))
    with pytest.raises(ConfigError):
        Stitcher((20, 20), window="tukey")
    acc = Stitcher((20, 20), channels=2)
    with pytest.raises(DimensionError, match="channels"):
        acc.add(np.ones((len(starts), P, P)), starts)

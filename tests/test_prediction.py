"""Prediction at scale: spatial tiles with overlap, chunk-invariant noise, a dask cluster."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_toy_pair, raise_if_dask_computes, tiny_config

from xdownscale.errors import ConfigError
from xdownscale.predict.day import (
    crop_starts,
    member_offset,
    patch_seeds,
    piece_layout,
    pixel_noise,
)
from xdownscale.tiling.patches import patch_starts

VAR = "DUEXTTAU"


@pytest.fixture(scope="module")
def wide():
    """A 44 x 37 fine grid (not a multiple of the stride) and a tiny DDPM fitted on it."""
    coarse, fine, elev = make_toy_pair(ny=44, nx=37, seed=1)
    torch.manual_seed(0)
    est = coarse.downscale.fit(fine, elevation=elev, model="ddpm", seasons=["JJA"],
                               config=tiny_config(infer_stride=4))
    days = est.test_days_["JJA"][:2]
    return est, coarse.sel(time=days), fine


@pytest.fixture
def small_tiles(wide):
    """The wide estimator predicting on 24-pixel tiles (halo 4, abutting cores): 3 x 2 tiles."""
    est = wide[0]
    old = est.config_
    est.config_ = old.replace(tile=24, tile_halo=4, tile_overlap=0)
    yield wide
    est.config_ = old


def test_tile_layout_covers_the_image_with_abutting_cores(small_tiles):
    est = small_tiles[0]
    side, stride, halo = piece_layout(est.config_, (44, 37), "tiles")
    assert (side, stride, halo) == (24, 16, 4)
    assert piece_layout(est.config_, (44, 37), "patches") == (16, 4, 4)
    # a tile larger than the image shrinks to the image's smaller side, rounded down to 4
    big = est.config_.replace(tile=128)
    assert piece_layout(big, (44, 37), "tiles")[0] == 36
    with pytest.raises(ConfigError, match="inference"):
        piece_layout(est.config_, (44, 37), "strips")


@pytest.mark.parametrize("inference", ["tiles", "patches"])
@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
@pytest.mark.parametrize("tiles", [{"lat": 20, "lon": 16}, {"lat": 7, "lon": 30},
                                   {"lat": 44, "lon": 5}])
def test_spatial_tiles_equal_whole_image(small_tiles, sampler, tiles, inference):
    # ddpm draws fresh noise at every step, so it checks the per-piece noise too; chunks
    # narrower than a piece (5, 7 pixels) need windows reaching over several neighbours.
    est, coarse, fine = small_tiles
    kw = dict(members=2, seed=4, sampler=sampler, steps=4, keep_members=True,
              inference=inference)
    eager = est.predict(coarse, history=fine, **kw)
    with raise_if_dask_computes():
        lazy = est.predict(coarse.chunk({"time": 1}),
                           history=fine.chunk({"time": 50, **tiles}), **kw)
    out = lazy[f"{VAR}_members"]
    assert out.chunks[2] == fine.chunk(tiles).chunks["lat"]
    assert out.chunks[3] == fine.chunk(tiles).chunks["lon"]
    np.testing.assert_allclose(out.values, eager[f"{VAR}_members"].values, rtol=1e-5, atol=1e-7)
    assert out.attrs["xdownscale_inference"] == inference


def test_coarse_chunked_in_space_is_regridded_whole(wide):
    est, coarse, fine = wide
    eager = est.predict(coarse, history=fine, seed=1)
    lazy = est.predict(coarse.chunk({"time": 1, "lat": 2, "lon": 2}), history=fine, seed=1)
    np.testing.assert_allclose(lazy[VAR].values, eager[VAR].values, rtol=1e-6)


def test_per_step_fusion_refuses_tiles(wide):
    est, coarse, fine = wide
    with pytest.raises(ConfigError, match="per_step"):
        est.predict(coarse, history=fine.chunk({"lat": 20}), fusion="per_step")
    # one tile is fine: the whole day is fused as usual
    est.predict(coarse.chunk({"time": 1}), history=fine, fusion="per_step", steps=2)


@pytest.mark.parametrize("inference", ["tiles", "patches"])
def test_batch_size_does_not_change_the_result(small_tiles, inference):
    est, coarse, fine = small_tiles
    kw = dict(history=fine, seed=5, sampler="ddpm", steps=3, inference=inference)
    ref = est.predict(coarse, **kw)[VAR].values
    old = est.config_.predict_batch_size
    try:
        # 7 patches do not divide the patch count; 3 patches' pixels are 1 tile per call
        for size in (7, 3):
            est.config_.predict_batch_size = size
            np.testing.assert_allclose(est.predict(coarse, **kw)[VAR].values, ref, rtol=1e-6)
    finally:
        est.config_.predict_batch_size = old


def test_tiles_of_patch_size_are_the_patch_path(wide):
    # one mechanism: tiles of side patch with halo `halo` are patches at stride patch - 2 halo
    est, coarse, fine = wide
    old = est.config_
    try:
        est.config_ = old.replace(infer_stride=8, tile=16, tile_halo=4, tile_overlap=0)
        kw = dict(history=fine, seed=2, sampler="ddpm", steps=3, members=2, keep_members=True)
        tiles = est.predict(coarse, inference="tiles", **kw)[f"{VAR}_members"].values
        patches = est.predict(coarse, inference="patches", **kw)[f"{VAR}_members"].values
    finally:
        est.config_ = old
    np.testing.assert_array_equal(tiles, patches)


def test_overlapping_tile_cores_shorten_the_stride(small_tiles):
    cfg = small_tiles[0].config_
    assert piece_layout(cfg.replace(tile_overlap=6), (44, 37), "tiles") == (24, 10, 4)
    # the overlap is capped at half a core, so a tile never steps by less
    assert piece_layout(cfg.replace(tile_overlap=15), (44, 37), "tiles") == (24, 8, 4)
    with pytest.raises(ConfigError, match="tile_overlap"):
        cfg.replace(tile_overlap=16)
    with pytest.raises(ConfigError, match="tile_overlap"):
        cfg.replace(tile_overlap=-1)


def test_overlapping_tiles_in_dask_chunks_equal_the_whole_image(small_tiles):
    est, coarse, fine = small_tiles
    old = est.config_
    est.config_ = old.replace(tile_overlap=6)
    try:
        kw = dict(members=2, seed=4, steps=3, keep_members=True)
        eager = est.predict(coarse, history=fine, **kw)[f"{VAR}_members"]
        lazy = est.predict(coarse.chunk({"time": 1}),
                           history=fine.chunk({"time": 50, "lat": 13, "lon": 16}), **kw)
        np.testing.assert_allclose(lazy[f"{VAR}_members"].values, eager.values, rtol=1e-5,
                                   atol=1e-7)
    finally:
        est.config_ = old


def test_pixel_noise_is_a_field_over_the_whole_map():
    from scipy import stats

    whole = pixel_noise(3, "2006-07-01", 0, (0, 0), (60, 70))
    # a window's noise is the whole map's there, wherever the window lies
    np.testing.assert_array_equal(pixel_noise(3, "2006-07-01", 0, (17, 9), (20, 31)),
                                  whole[17:37, 9:40])
    assert whole.dtype == np.float32
    assert stats.kstest(whole.ravel(), "norm").pvalue > 1e-3
    # neighbouring pixels, rows and columns are uncorrelated
    for a, b in ((whole[:, 1:], whole[:, :-1]), (whole[1:], whole[:-1])):
        assert abs(np.corrcoef(a.ravel(), b.ravel())[0, 1]) < 0.05
    for other in (pixel_noise(4, "2006-07-01", 0, (0, 0), (60, 70)),
                  pixel_noise(3, "2006-07-02", 0, (0, 0), (60, 70)),
                  pixel_noise(3, "2006-07-01", 1, (0, 0), (60, 70))):
        assert abs(np.corrcoef(other.ravel(), whole.ravel())[0, 1]) < 0.05


def test_tiles_differ_from_patches_but_stay_close(small_tiles):
    est, coarse, fine = small_tiles
    kw = dict(history=fine, seed=3, steps=3)
    tiles = est.predict(coarse, inference="tiles", **kw)[VAR].values
    patches = est.predict(coarse, inference="patches", **kw)[VAR].values
    assert np.isfinite(tiles).all() and not np.allclose(tiles, patches)
    with pytest.raises(ConfigError, match="inference"):
        est.predict(coarse, inference="strips", **kw)


def test_patch_seeds_are_distinct_and_reproducible():
    starts = patch_starts((432, 357), patch=16, stride=2)
    seeds = patch_seeds(0, "2006-07-01", 0, starts)
    assert np.unique(seeds).size == len(starts)
    assert (seeds >= 0).all()
    np.testing.assert_array_equal(seeds, patch_seeds(0, "2006-07-01", 0, starts))
    # one patch's seed depends on its own corner only, not on its neighbours
    np.testing.assert_array_equal(patch_seeds(0, "2006-07-01", 0, starts[100:101]), seeds[100:101])
    for other in (patch_seeds(1, "2006-07-01", 0, starts), patch_seeds(0, "2006-07-02", 0, starts),
                  patch_seeds(0, "2006-07-01", 1, starts)):
        assert np.intersect1d(other, seeds).size == 0


def test_window_starts_cover_the_interior_as_the_whole_tiling_does():
    shape, patch, stride = (44, 37), 16, 4
    every = patch_starts(shape, patch=patch, stride=stride)
    origin, wshape = (3, 10), (40, 27)
    inside = crop_starts(shape, origin, wshape, patch, stride)
    assert all(tuple(s) in {tuple(e) for e in every} for s in inside)
    # a pixel patch pixels inside the window is covered by the same patches in both tilings
    y, x = origin[0] + patch, origin[1] + patch
    covers = lambda s: (s[:, 0] <= y) & (y < s[:, 0] + patch) & (s[:, 1] <= x) & (x < s[:, 1] + patch)  # noqa: E731
    np.testing.assert_array_equal(every[covers(every)], inside[covers(inside)])


def test_predict_on_a_two_worker_cluster(wide):
    distributed = pytest.importorskip("distributed")
    est, coarse, fine = wide
    eager = est.predict(coarse, history=fine, seed=6, members=2)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        lazy = est.predict(coarse.chunk({"time": 1}),
                           history=fine.chunk({"time": 50, "lat": 22}), seed=6, members=2)
        result = client.compute(lazy).result()
        workers = client.run(lambda: 1)
    assert len(workers) == 2
    np.testing.assert_allclose(result[VAR].values, eager[VAR].values, rtol=1e-5)
    np.testing.assert_allclose(result[f"{VAR}_std"].values, eager[f"{VAR}_std"].values,
                               rtol=1e-4, atol=1e-7)


def test_worker_heap_tuning_runs_once_and_only_under_a_nanny(monkeypatch):
    from xdownscale.predict import labelled as prediction
    calls = []
    monkeypatch.setattr(prediction, "_MALLOC", {"done": False})
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    monkeypatch.setattr(prediction.ctypes, "CDLL", lambda name: calls.append(name))
    prediction._keep_heap_for_torch()  # a plain process: nothing changes
    assert calls == [] and prediction._MALLOC["done"]
    monkeypatch.setattr(prediction, "_MALLOC", {"done": False})
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    prediction._keep_heap_for_torch()
    prediction._keep_heap_for_torch()
    assert len(calls) == (1 if prediction.sys.platform.startswith("linux") else 0)


def test_auto_takes_patches_on_small_maps_and_training_size_tiles_beyond():
    from xdownscale import DownscaleConfig

    cfg = DownscaleConfig()
    # 13 x 13 = 169 patches at stride 2: the paper's patches
    assert piece_layout(cfg, (40, 40), "auto") == (16, 2, 4)
    # 625 patches at stride 2: tiles, by default of the training patch's size at stride 5
    assert piece_layout(cfg, (64, 64), "auto") == (16, 5, 4)
    assert piece_layout(cfg, (432, 357), "auto") == piece_layout(cfg, (432, 357), "tiles")
    # fast()'s stride 4 keeps a 64 x 64 window (169 patches) on patches
    assert piece_layout(DownscaleConfig.fast(), (64, 64), "auto") == (16, 4, 4)
    # the previous default tiles stay one setting away
    assert piece_layout(cfg.replace(tile=24, tile_overlap=4), (64, 64), "auto") == (24, 12, 4)


def test_member_offsets_start_at_the_plain_grid_and_spread_over_the_stride():
    assert all(member_offset(0, s) == (0, 0) for s in range(1, 9))
    assert all(member_offset(m, 1) == (0, 0) for m in range(10))
    for stride in range(2, 9):
        offsets = [member_offset(m, stride) for m in range(40)]
        assert all(0 <= o < stride for off in offsets for o in off)
        # the first members take distinct shifts, and every row and column shift comes up
        first = offsets[: min(4, stride)]
        assert len(set(first)) == len(first)
        assert {o[0] for o in offsets} == {o[1] for o in offsets} == set(range(stride))


def test_members_are_cut_on_shifted_layouts(wide):
    from xdownscale import DownscaleConfig

    est, coarse, fine = wide
    old, spread = est.config_, dict(est.spread_)
    # the raw members: the spread factor and the coarse-consistency step move them all
    est.spread_ = dict.fromkeys(spread, 1.0)
    est.config_ = old.replace(coarse_consistency=False)
    kw = dict(history=fine, members=3, seed=5, steps=3, keep_members=True)
    try:
        shifted = est.predict(coarse, **kw)[f"{VAR}_members"].values
        est.config_ = est.config_.replace(member_shift=False)
        plain = est.predict(coarse, **kw)[f"{VAR}_members"].values
    finally:
        est.config_, est.spread_ = old, spread
    assert old.member_shift
    # member 0 is cut on the plain grid; the others on their own shifts of it, from the same
    # starting noise, so they differ from the plain members but only by where they were cut
    np.testing.assert_array_equal(shifted[0], plain[0])  # (member, time, lat, lon)
    for m in (1, 2):
        assert not np.allclose(shifted[m], plain[m], rtol=1e-4, atol=0)
        assert np.abs(np.log10(shifted[m] / plain[m])).mean() < 0.1
    # a fit saved before the field keeps the one layout it was calibrated with
    data = {k: v for k, v in old.to_dict().items() if k != "member_shift"}
    assert DownscaleConfig.from_dict(data, saved=True).member_shift is False
    assert not DownscaleConfig.paper().member_shift

"""Patch geometry, cutting and the day-grouped patch loader."""

from __future__ import annotations

import weakref
from collections import Counter

import numpy as np
import pytest

from xdownscale.errors import ConfigError, DimensionError
from xdownscale.tiling.patches import cut_patches, patch_starts, valid_patch_mask

torch = pytest.importorskip("torch")

SHAPES = [(16, 16), (37, 23), (23, 37), (40, 51), (17, 64)]


def brute_cut(arr, starts, patch):
    return np.stack([arr[..., y : y + patch, x : x + patch] for y, x in starts])


# ----------------------------------------------------------------------------- patch_starts
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("stride", [1, 2, 3, 8, 16])
def test_starts_cover_every_pixel_once_per_start(shape, stride):
    starts = patch_starts(shape, patch=16, stride=stride)
    assert starts.dtype == np.int64 and starts.shape[1] == 2
    coverage = np.zeros(shape, int)
    for y, x in starts:
        coverage[y : y + 16, x : x + 16] += 1
    assert (coverage > 0).all()
    # no duplicates, row-major order
    assert len({tuple(s) for s in starts.tolist()}) == len(starts)
    keys = starts[:, 0] * 10_000 + starts[:, 1]
    assert (np.diff(keys) > 0).all()


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("stride", [2, 8])
def test_starts_regular_grid_plus_flush_tail(shape, stride):
    starts = patch_starts(shape, patch=16, stride=stride)
    for axis in (0, 1):
        values = np.unique(starts[:, axis])
        expected = list(range(0, shape[axis] - 16 + 1, stride))
        if expected[-1] != shape[axis] - 16:
            expected.append(shape[axis] - 16)
        assert values.tolist() == expected
    assert len(starts) == np.unique(starts[:, 0]).size * np.unique(starts[:, 1]).size


def test_starts_odd_size_by_hand():
    # 37 rows, stride 8: 0, 8, 16 and the flush start 21; 23 cols: 0 and the flush start 7.
    starts = patch_starts((37, 23), patch=16, stride=8)
    assert np.unique(starts[:, 0]).tolist() == [0, 8, 16, 21]
    assert np.unique(starts[:, 1]).tolist() == [0, 7]
    starts2 = patch_starts((37, 23), patch=16, stride=2)
    assert np.unique(starts2[:, 0]).tolist() == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 21]
    assert np.unique(starts2[:, 1]).tolist() == [0, 2, 4, 6, 7]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(("stride", "offset"), [(5, (3, 2)), (5, (0, 4)), (2, (1, 1)),
                                                (8, (7, 0))])
def test_starts_with_an_offset_shift_the_grid_and_keep_the_border(shape, stride, offset):
    starts = patch_starts(shape, patch=16, stride=stride, offset=offset)
    coverage = np.zeros(shape, int)
    for y, x in starts:
        coverage[y : y + 16, x : x + 16] += 1
    assert (coverage > 0).all()
    assert len({tuple(s) for s in starts.tolist()}) == len(starts)
    for axis in (0, 1):
        o, last = offset[axis], shape[axis] - 16
        expected = ([0] if o else []) + list(range(o, last + 1, stride))
        if expected[-1] != last:
            expected.append(last)
        assert np.unique(starts[:, axis]).tolist() == expected
    # no offset is the plain grid
    np.testing.assert_array_equal(patch_starts(shape, patch=16, stride=stride, offset=(0, 0)),
                                  patch_starts(shape, patch=16, stride=stride))


def test_starts_offset_by_hand_and_errors():
    # 23 columns, stride 5, offset 3: the border patch 0, then 3 and the flush start 7
    assert np.unique(patch_starts((16, 23), stride=5, offset=(0, 3))[:, 1]).tolist() == [0, 3, 7]
    # an image one patch wide: the one start 0, whatever the offset
    assert patch_starts((16, 16), stride=5, offset=(4, 4)).tolist() == [[0, 0]]
    for bad in ((5, 0), (-1, 0), (0,), (2.5, 0)):
        with pytest.raises(ConfigError, match="offset"):
            patch_starts((40, 40), stride=5, offset=bad)


def test_starts_errors():
    with pytest.raises(DimensionError, match="15 pixels"):
        patch_starts((15, 40), patch=16)
    with pytest.raises(DimensionError):
        patch_starts((40,), patch=16)
    with pytest.raises(ConfigError):
        patch_starts((40, 40), stride=0)
    with pytest.raises(ConfigError):
        patch_starts((40, 40), patch=2.5)


# ----------------------------------------------------------------------------- cut_patches
@pytest.mark.parametrize("lead", [(), (3,), (2, 3)])
def test_cut_numpy_torch_brute_force(lead):
    rng = np.random.default_rng(0)
    arr = rng.normal(size=(*lead, 37, 23)).astype(np.float32)
    starts = patch_starts((37, 23), patch=16, stride=2)
    expected = brute_cut(arr, starts, 16)
    got = cut_patches(arr, starts, 16)
    assert got.shape == (len(starts), *lead, 16, 16) and got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)
    got_t = cut_patches(torch.from_numpy(arr), starts, 16)
    assert isinstance(got_t, torch.Tensor) and got_t.dtype == torch.float32
    np.testing.assert_array_equal(got_t.numpy(), expected)
    # torch starts work too, and the result is a copy, not a view on the image
    got_t2 = cut_patches(torch.from_numpy(arr), torch.from_numpy(starts), 16)
    np.testing.assert_array_equal(got_t2.numpy(), expected)
    # tensors that need autograd (and dtypes NumPy lacks) take torch's own gather
    leaf = torch.from_numpy(arr).requires_grad_()
    got_g = cut_patches(leaf, starts, 16)
    assert got_g.requires_grad
    np.testing.assert_array_equal(got_g.detach().numpy(), expected)
    got_bf = cut_patches(torch.from_numpy(arr).bfloat16(), starts, 16)
    expected_bf = torch.from_numpy(expected).bfloat16().float()
    np.testing.assert_array_equal(got_bf.float().numpy(), expected_bf.numpy())
    got[...] = 0
    assert np.abs(arr).sum() > 0


def test_cut_errors():
    arr = np.zeros((20, 20))
    with pytest.raises(DimensionError, match="outside"):
        cut_patches(arr, [[5, 0]], 16)
    with pytest.raises(DimensionError):
        cut_patches(arr, [[-1, 0]], 16)
    with pytest.raises(DimensionError):
        cut_patches(arr, [[0.5, 0]], 16)
    with pytest.raises(DimensionError):
        cut_patches(np.zeros(20), [[0, 0]], 16)


def test_valid_patch_mask_vs_brute_force():
    rng = np.random.default_rng(1)
    mask = rng.random((41, 29)) > 0.01
    starts = patch_starts(mask.shape, patch=8, stride=3)
    expected = np.array([mask[y : y + 8, x : x + 8].all() for y, x in starts])
    got = valid_patch_mask(mask, starts, 8)
    assert 0 < got.sum() < len(got)  # the case is not trivial
    np.testing.assert_array_equal(got, expected)


# ----------------------------------------------------------------------------- DayPatchDataset
NY, NX, P = 37, 23, 8


def make_day(day):
    """Channel 0 is the day, channel 1 the pixel number, so each patch identifies itself."""
    x = np.stack([np.full((NY, NX), float(day)), np.arange(NY * NX, dtype=float).reshape(NY, NX)])
    y = x[:1] * 2
    if day % 3 == 1:  # NaN in one array only
        y[0, 5, 5] = np.nan
    out = {"x": x, "y": y}
    if day % 3 == 2:  # an explicit validity mask
        valid = np.ones((NY, NX), bool)
        valid[30, 20] = False
        out["valid"] = valid
    return out


class Loader:
    """load_day that counts calls and how many earlier days are still alive."""

    def __init__(self):
        self.calls = Counter()
        self.refs = []
        self.max_alive = 0

    def __call__(self, day):
        self.max_alive = max(self.max_alive, sum(r() is not None for r in self.refs))
        self.calls[day] += 1
        out = {k: v.astype(np.float32) for k, v in make_day(day).items() if k != "valid"}
        self.refs += [weakref.ref(v) for v in out.values()]
        if "valid" in (d := make_day(day)):
            out["valid"] = d["valid"]
        return out


def expected_patches(days, starts):
    keys = set()
    for position, day in enumerate(days):
        d = make_day(day)
        ok = np.isfinite(d["x"]).all(0) & np.isfinite(d["y"]).all(0) & d.get("valid", True)
        for i, (y, x) in enumerate(starts):
            if ok[y : y + P, x : x + P].all():
                keys.add((position, i))
    return keys


def dataset(days, load_day=None, **kw):
    from xdownscale.tiling.patches import DayPatchDataset

    starts = patch_starts((NY, NX), patch=P, stride=3)
    kw.setdefault("batch_size", 7)
    kw.setdefault("buffer_days", 2)
    return DayPatchDataset(days, load_day or make_day, starts, patch=P, **kw), starts


def collect(ds):
    return [{k: v.numpy() for k, v in b.items()} for b in ds]


def keys_of(batches, starts):
    index = {tuple(s): i for i, s in enumerate(starts.tolist())}
    return [
        (int(d), index[tuple(s)])
        for b in batches
        for d, s in zip(b["day"], b["start"].tolist(), strict=True)
    ]


def test_dataset_every_valid_patch_once_with_right_content():
    days = [10, 11, 12, 13, 14]
    ds, starts = dataset(days)
    batches = collect(ds)
    keys = keys_of(batches, starts)
    assert len(keys) == len(set(keys))
    assert set(keys) == expected_patches(days, starts)
    assert all(len(b["day"]) == 7 for b in batches[:-1]) and 0 < len(batches[-1]["day"]) <= 7
    assert len(batches) <= ds.n_batches_estimate()
    for b in batches:
        assert set(b) == {"x", "y", "day", "start"}
        assert b["x"].dtype == np.float32 and b["x"].shape[1:] == (2, P, P)
        assert b["y"].shape[1:] == (1, P, P)
        assert np.isfinite(b["x"]).all() and np.isfinite(b["y"]).all()
        for j, (pos, (y, x)) in enumerate(zip(b["day"], b["start"], strict=True)):
            full = make_day(days[pos])
            np.testing.assert_array_equal(b["x"][j], full["x"][:, y : y + P, x : x + P])


def test_dataset_day_grouping_and_batches_mix_days():
    train, hold = [0, 1, 2, 3], [4, 5]
    ds_train, starts = dataset(train)
    ds_hold, _ = dataset(hold)
    days_train = {train[d] for b in collect(ds_train) for d in b["day"]}
    days_hold = {hold[d] for b in collect(ds_hold) for d in b["day"]}
    assert days_train == set(train) and days_hold == set(hold)
    # patches are shuffled across the buffer's days, not served day after day
    day_seq = [d for d, _ in keys_of(collect(ds_train), starts)]
    switches = sum(a != b for a, b in zip(day_seq[:-1], day_seq[1:], strict=True))
    assert switches > 5 * len(train)


def test_dataset_deterministic_and_epochs_differ():
    days = list(range(6))
    a, starts = dataset(days, seed=3)
    b, _ = dataset(days, seed=3)
    ka, kb = keys_of(collect(a), starts), keys_of(collect(b), starts)
    assert ka == kb
    assert keys_of(collect(a), starts) == ka  # same epoch again: same order
    a.set_epoch(1)
    k1 = keys_of(collect(a), starts)
    assert k1 != ka and sorted(k1) == sorted(ka)
    c, _ = dataset(days, seed=4)
    assert keys_of(collect(c), starts) != ka


def test_dataset_unshuffled_is_in_order():
    days = [0, 1, 2]
    ds, starts = dataset(days, shuffle=False)
    keys = keys_of(collect(ds), starts)
    assert keys == sorted(keys)


def test_dataset_loads_each_day_once_and_holds_few_days():
    loader = Loader()
    days = list(range(9))
    ds, _ = dataset(days, load_day=loader, buffer_days=3)
    for epoch in range(2):
        ds.set_epoch(epoch)
        for _ in ds:
            pass
        assert all(loader.calls[d] == epoch + 1 for d in days)
    # when a day is loaded, at most the other days of its own buffer are alive
    assert loader.max_alive <= 2 * (3 - 1)  # two arrays per day
    assert loader.max_alive > 0


def test_dataset_patches_per_day():
    days = list(range(4))
    ds, starts = dataset(days, patches_per_day=5)
    keys = keys_of(collect(ds), starts)
    assert Counter(d for d, _ in keys) == {d: 5 for d in range(4)}
    assert set(keys) <= expected_patches(days, starts)
    assert ds.n_batches_estimate() == 3  # ceil(4 * 5 / 7)
    val, _ = dataset(days, patches_per_day=5, shuffle=False)
    first = keys_of(collect(val), starts)
    val.set_epoch(5)
    assert keys_of(collect(val), starts) == first  # a fixed validation subset


def test_dataset_keep_invalid_and_dataloader():
    days = [1, 2]
    ds, starts = dataset(days, drop_invalid=False, shuffle=False)
    batches = collect(ds)
    assert sum(len(b["day"]) for b in batches) == 2 * len(starts)
    assert any(np.isnan(b["y"]).any() for b in batches)
    ds2, _ = dataset(days, seed=1)
    loader = torch.utils.data.DataLoader(ds2, batch_size=None, num_workers=0)
    via_loader = [{k: v.numpy() for k, v in b.items()} for b in loader]
    direct = collect(ds2)
    assert len(via_loader) == len(direct)
    for u, v in zip(via_loader, direct, strict=True):
        for k in u:
            np.testing.assert_array_equal(u[k], v[k])


def test_dataset_bad_day_arrays():
    ds, _ = dataset([0], load_day=lambda day: {"x": np.zeros((NY, NX))})
    with pytest.raises(DimensionError, match=r"\(C, ny, nx\)"):
        next(iter(ds))
    ds, _ = dataset([0], load_day=lambda day: {"x": np.zeros((1, 10, 10))})
    with pytest.raises(DimensionError, match="outside"):
        next(iter(ds))

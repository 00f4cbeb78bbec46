"""Dust events of the synthetic truth: elongated plumes that drift for a few days.

Each day ``s`` has ``MAX_BIRTHS`` event slots; slot ``k`` holds an event with probability
``rate(s) / MAX_BIRTHS`` (a binomial stand-in for a Poisson count), and every property of the
event is a uniform addressed by ``(seed, s, k, property)`` (see :mod:`._noise`). Origins are
drawn over the whole area plus 2 degrees, not just the requested window, so an event looks the
same in every window and every time chunk. An event born on day ``s`` lives ``L`` days; on day
``s + a`` it is an anisotropic Gaussian bump in log10 AOD, stretched along its heading, centred
at ``origin + a * velocity``, widening as it ages, with amplitude ``A sin(pi (a + 1) / (L + 1))``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.special

from ..data.regions import Region
from ._noise import lattice_uniforms

MAX_LIFE = 5        # days an event can live: a day needs the births of MAX_LIFE - 1 days back
MAX_BIRTHS = 24     # event slots per day (the expected count must stay well below this)
_N_PROPS = 11
_GROUP = 8          # blobs per gemm
_REACH = 3.5        # Gaussian profiles are cut at this many standard deviations
_SIDE = 0.6         # weight of the two outer blobs of a plume


@dataclass(frozen=True)
class EventParams:
    """How dust events look in one area."""

    heading_deg: float          # prevailing direction of travel (0 = north, 90 = east)
    heading_spread_deg: float   # standard deviation around it
    speed: tuple[float, float]  # degrees per day, uniform range
    size: tuple[float, float]   # along-track standard deviation at birth, degrees
    amplitude_mean: float       # mean peak bump in log10 AOD (gamma distributed, shape 2)
    source_scale_m: float       # origins are thinned with probability exp(-elevation / this)


def births(key: np.uint64, days: np.ndarray, rates: np.ndarray, box: Region,
           elevation_at, prm: EventParams) -> dict[str, np.ndarray]:
    """Every event born on ``days`` (expected ``rates`` per day), as flat arrays in
    (day, slot) order."""
    u = lattice_uniforms(key, days, np.arange(MAX_BIRTHS), np.arange(_N_PROPS))
    birth = np.repeat(np.asarray(days, dtype=np.int64), MAX_BIRTHS)
    u = u.reshape(-1, _N_PROPS)
    lat0 = box.lat_min - 2.0 + u[:, 1] * (box.lat_max - box.lat_min + 4.0)
    lon0 = box.lon_min - 2.0 + u[:, 2] * (box.lon_max - box.lon_min + 4.0)
    occupied = u[:, 0] < np.repeat(np.asarray(rates) / MAX_BIRTHS, MAX_BIRTHS)
    source = u[:, 9] < np.exp(-elevation_at(lat0, lon0) / prm.source_scale_m)
    keep = occupied & source
    u, birth, lat0, lon0 = u[keep], birth[keep], lat0[keep], lon0[keep]
    heading = np.deg2rad(prm.heading_deg
                         + prm.heading_spread_deg * scipy.special.ndtri(u[:, 3]))
    speed = prm.speed[0] + u[:, 4] * (prm.speed[1] - prm.speed[0])
    # Gamma(2, theta) as a sum of two exponentials.
    amp = np.minimum(-0.5 * prm.amplitude_mean * np.log(u[:, 5] * u[:, 6]), 1.0)
    s_major = prm.size[0] + u[:, 7] * (prm.size[1] - prm.size[0])
    s_minor = s_major * (0.35 + 0.45 * u[:, 8])
    life = 2 + (u[:, 10] * (MAX_LIFE - 1)).astype(np.int64)  # 2 .. MAX_LIFE days
    return {"birth": birth, "lat0": lat0, "lon0": lon0, "vlat": speed * np.cos(heading),
            "vlon": speed * np.sin(heading), "cos": np.cos(heading), "sin": np.sin(heading),
            "amp": amp, "s_major": s_major, "s_minor": s_minor, "life": life}


def _sub_blobs(events: dict[str, np.ndarray], d0: int, n_days: int, lat: np.ndarray,
               lon: np.ndarray) -> dict[str, np.ndarray]:
    """Each (event, age) alive in the block and near the grid as three isotropic Gaussians in a
    row along the heading (a separable stand-in for an elongated plume), in (birth, slot, age,
    blob) order."""
    ev = events
    age = np.arange(MAX_LIFE)[None, :]
    t = ev["birth"][:, None] + age - d0
    grow = 1.0 + 0.2 * age
    s_maj, s_min = ev["s_major"][:, None] * grow, ev["s_minor"][:, None] * grow
    clat = ev["lat0"][:, None] + age * ev["vlat"][:, None]
    clon = ev["lon0"][:, None] + age * ev["vlon"][:, None]
    peak = ev["amp"][:, None] * np.sin(np.pi * (age + 1) / (ev["life"][:, None] + 1))
    # Spacing of the three blobs so the row is about as long as the plume's major axis.
    gap = 1.2 * np.sqrt(np.maximum(s_maj**2 - s_min**2, 0.0))
    centre = 1.0 + 2 * _SIDE * np.exp(-0.5 * (gap / s_min) ** 2)
    reach = _REACH * s_min + gap
    near = ((age < ev["life"][:, None]) & (t >= 0) & (t < n_days)
            & (clat + reach >= lat[0]) & (clat - reach <= lat[-1])
            & (clon + reach >= lon[0]) & (clon - reach <= lon[-1]))
    e, a = np.nonzero(near)
    k = np.array([-1.0, 0.0, 1.0])[None, :]
    weight = np.array([_SIDE, 1.0, _SIDE])[None, :]
    return {
        "t": np.repeat(t[e, a], 3),
        "lat": (clat[e, a][:, None] + k * gap[e, a][:, None] * ev["cos"][e][:, None]).ravel(),
        "lon": (clon[e, a][:, None] + k * gap[e, a][:, None] * ev["sin"][e][:, None]).ravel(),
        "sd": np.repeat(s_min[e, a], 3),
        "amp": (peak[e, a][:, None] * weight / centre[e, a][:, None]).ravel(),
    }


def _profile(coord: np.ndarray, centre: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """Truncated Gaussian profiles ``(n_blobs, n_coord)``; the cut at ``_REACH`` sd makes a
    blob's value at a place independent of the window it is computed in."""
    z = (coord[None, :] - centre[:, None]) / sd[:, None]
    return np.where(np.abs(z) <= _REACH, np.exp(-0.5 * z * z), 0.0)


def add_events(out: np.ndarray, days: np.ndarray, lat: np.ndarray, lon: np.ndarray,
               atten: np.ndarray, events: dict[str, np.ndarray]) -> None:
    """Add the log10 bumps of ``events`` alive on ``days`` to ``out`` (days, lat, lon), in place.

    A day's blobs are summed as rank-``_GROUP`` outer products ``Gy @ Gx`` (one small gemm per
    group of blobs). The groups of a day depend on that day's blobs only and are added in a
    fixed order, so a day's value does not depend on which other days are computed with it.
    ``atten`` (lat, lon) damps the bumps over high terrain.
    """
    blobs = _sub_blobs(events, int(days[0]), out.shape[0], lat, lon)
    if blobs["t"].size == 0:
        return
    order = np.argsort(blobs["t"], kind="stable")
    t = blobs["t"][order]
    rank = np.arange(t.size) - np.searchsorted(t, t, side="left")
    gy = (blobs["amp"][order, None] * _profile(lat, blobs["lat"][order], blobs["sd"][order]))
    gx = _profile(lon, blobs["lon"][order], blobs["sd"][order])
    bumps = np.zeros_like(out)
    for group in range(int(rank.max()) // _GROUP + 1):
        # Every day takes part in every group (zeros where it has no blobs left): adding an
        # exact zero changes nothing, so a day's sum never depends on the other days.
        sel = np.flatnonzero(rank // _GROUP == group)
        a = np.zeros((out.shape[0], lat.size, _GROUP), out.dtype)
        b = np.zeros((out.shape[0], _GROUP, lon.size), out.dtype)
        a[t[sel], :, rank[sel] % _GROUP] = gy[sel]
        b[t[sel], rank[sel] % _GROUP, :] = gx[sel]
        bumps += a @ b
    bumps *= atten
    out += bumps

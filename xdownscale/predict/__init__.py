"""Prediction with a fitted estimator: the one-day kernel, its xarray/dask wrapper, rollouts.

``day`` turns one day's inputs into fine maps (patches or tiles, samplers, noise, spread);
``labelled`` maps it over the days of a Dataset, eagerly or as a dask graph; ``rollout`` feeds
each predicted day back as history; ``drift`` and ``evaluation`` judge rollouts.
"""

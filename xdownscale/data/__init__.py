"""The data side: read, clip, regrid, transform, split and window the records (xarray in and out).

Nothing here imports torch, the models or the estimator.
"""

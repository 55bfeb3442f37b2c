"""Shared science code: models, tasks (and later kernels, probes).

Nothing in here imports Snakemake or MLflow, so every model and task can be used and
tested alone.
"""

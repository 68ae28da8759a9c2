"""Experiments: one grid point (:mod:`.runner`), sweeps, the results store and reports."""

from .runner import evaluate_models, run_experiment

__all__ = ["evaluate_models", "run_experiment"]

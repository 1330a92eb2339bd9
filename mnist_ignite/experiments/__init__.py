"""Experiments over runs: the lr range test, repeats over seeds, comparisons, hyperparameter sweeps."""

"""Hyperparameter sweeps on Optuna: ``space`` reads the sweep file, ``study`` runs the study and its workers."""

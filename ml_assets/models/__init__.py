"""The model layer: datasets, learners, baselines, metrics, comparison, quality checks, registry.

Pure functions and small classes with no Dagster import; the training and evaluation assets call
them. Heavy libraries (lightgbm, torch, sklearn, mlflow, optuna, matplotlib) are imported inside
functions so that importing this package stays cheap for the Dagster code location (`pyfunc`,
which subclasses MLflow's model class, is itself only imported inside functions).
"""

"""Training a user starts over HTTP (seed 001's Training APIs): the request (``requests``), the real
training of each model type (``trainers``) run inside a Dagster run, and reading its progress back from
MLflow and the task's events (``progress``). The task type is kiln/tasks/types/training.py."""

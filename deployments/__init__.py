"""Deployments: ``prefect.yaml`` for the work-pool route, ``serve.py`` for one-process serving."""

"""Prefect flows: thin wrappers that run tdd_priv's steps as tasks."""

import os

# A privacy tool should not phone home: Prefect's server telemetry stays off unless asked for.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

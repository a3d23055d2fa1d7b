"""Kiln's adapters' outside edges: command lines for `bentoml serve`, and Dagster's GraphQL API.

The core never imports Dagster or BentoML; what speaks to them as processes or over HTTP lives here."""

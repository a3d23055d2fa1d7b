"""Kiln's BentoML services: a gateway with the REST surface, and model workers behind it."""

from kiln.settings import set_environment

set_environment()  # before bentoml is imported: it reads BENTOML_HOME once

"""Kiln core library: catalog, model store, engines, training and evaluation.

Nothing here imports Dagster or BentoML; both adapters call into this package.
"""

__version__ = "0.1.0"

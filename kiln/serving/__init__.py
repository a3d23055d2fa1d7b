"""Serving machinery that is independent of any server framework: instance pools with idle unloading,
request statistics over a sliding window, model optimization and background downloads."""

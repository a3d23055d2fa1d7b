"""The task system: every piece of long work (seed 002's tasks, generation, training, device batches) is a
record in Kiln's database (``models``, ``records``) run by Huey workers (``queue``, ``worker``,
``runner``), with one registry of task types (``registry``, ``types/``) and one event log (``events``)."""

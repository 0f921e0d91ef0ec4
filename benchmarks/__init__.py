"""Benchmarks of dfstream against a naive reference: ``python -m benchmarks.compare``,
``python -m benchmarks.scaling``. Recorded runs live in ``benchmarks/results/``."""

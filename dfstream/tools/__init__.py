"""Helpers for commands, benchmarks, tests and examples — never used by the analysis itself:
``benchkit`` (measuring the pipeline from outside) and ``synth`` (generated H.264 clips)."""

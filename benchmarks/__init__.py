"""Benchmarks: comparison suites and recorded results (results/)."""

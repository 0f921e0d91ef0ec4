"""Throughput and comparison suites of dfstream against a naive reference
(``python -m benchmarks.compare``, ``python -m benchmarks.scaling``, ...). Recorded runs live in
``benchmarks/results/``.

Not an installed package: run the suites from the repository root. Nothing in ``dfstream`` or
``training`` imports them."""

"""Research experiments on the training side: not used by ``python -m training`` or dfstream.

``python -m training.research.sbi_signal``: does self-blending (``training.sbi_pairs``) teach a
small local model something that transfers to an unseen person? Its recorded result is
``benchmarks/results/sbi_signal.json``.
"""

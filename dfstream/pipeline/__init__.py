"""Threads, queues, batching, window caches and scoring."""

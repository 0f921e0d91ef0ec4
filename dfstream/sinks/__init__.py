"""Consumers of pipeline events: JSONL, progress lines, summary table (and later dashboard,
overlay video and report)."""

from dfstream.sinks.base import Sink, SinkGroup
from dfstream.sinks.jsonl import JsonlSink

__all__ = ["JsonlSink", "Sink", "SinkGroup"]

"""Consumers of pipeline events: JSONL, progress lines and summary table (``console``), the live
dashboard (``dashboard``), the overlay video (``overlay``) and the JSON/PNG report (``report``).
The heavier ones are imported where they are used."""

from dfstream.sinks.base import Sink, SinkGroup
from dfstream.sinks.jsonl import JsonlSink

__all__ = ["JsonlSink", "Sink", "SinkGroup"]

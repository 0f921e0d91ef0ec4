"""``dfstream scan``: batch analysis of an archive of videos, on this machine or a Ray cluster.

The parts, one module each:

* ``inputs``: SOURCES (files, folders, globs, CSV or text lists) -> the videos, each once;
* ``worker``: ``ScanWorker`` keeps a model loaded and analyses one video at a time; what it
  returns (``JobResult``) is plain JSON-ready data, so it crosses process and node boundaries;
* ``executor``: the ``Executor`` interface and the local process pool (``ProcessExecutor``);
  ``dfstream.cluster.scan`` implements it with Ray actors;
* ``schedule``: hands videos to idle workers, retries a video once elsewhere when it fails or its
  worker dies, reports one that fails twice; the same for both executors;
* ``results``: the merged JSONL (resumable), the CSV of verdicts and the report;
* ``progress``: the progress bar with ETA and throughput (plain lines when not a terminal).
"""

from __future__ import annotations

"""dfstream as a library: analyse a clip, watch its events, add a source while it runs.

    python examples/library.py [VIDEO ...]

Without arguments it writes two short generated clips and analyses them with the untrained
model (scores are meaningless; the point is the API). With videos, it analyses those.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import dfstream
from dfstream.tools.synth import write_synthetic_clip


def main(videos: list[str]) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        if not videos:
            videos = [
                str(write_synthetic_clip(Path(tmp) / f"clip{i}.mp4", seconds=3)) for i in (1, 2)
            ]
        first, *later = videos
        config = dfstream.AnalysisConfig(sources=(first,), untrained=True, detector="none")
        outputs = dfstream.OutputConfig(jsonl=str(Path(tmp) / "events.jsonl"))
        with dfstream.Analysis(config, outputs=outputs, on_notice=print) as run:
            events = run.events()  # subscribe before starting: no event is missed
            run.start()
            for event in events:
                if isinstance(event, dfstream.StatusEvent) and event.state == "connected":
                    print(f"{event.stream_id}: connected")
                    if event.stream_id == first:
                        for video in later:  # more sources join the running analysis
                            run.add_source(video)
                elif isinstance(event, dfstream.VerdictEvent):
                    print(f"{event.stream_id}: {event.verdict.value} at {event.media_time:.1f} s")
                elif isinstance(event, dfstream.StreamSummary):
                    print(f"{event.stream_id}: done, {event.windows_scored} windows scored")
        for summary in run.result.summaries:
            print(f"{summary.stream_id}: whole video {summary.verdict.value}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

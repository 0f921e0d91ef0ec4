"""Which decoded frames of a live connection are correct enough to analyse.

A decoder that starts in the middle of a stream, loses a packet or receives a frame whose
reference pictures it never saw still outputs pictures: grey or green blocks, smeared motion.
A face detector finds nothing on them and the CNN scores noise, so they must never reach the
analyser. ``FrameGate`` decides, frame by frame, for one connection at a time:

- after every (re)connect nothing passes until a *clean keyframe* (a keyframe the decoder does
  not flag as corrupt);
- a frame flagged corrupt (FFmpeg's ``AV_FRAME_FLAG_CORRUPT``, PyAV's ``frame.is_corrupt``),
  a corrupt packet or a decoding error drops that frame and every frame after it until the
  next clean keyframe: the frames in between predict from the broken one.

An open-GOP keyframe (an I picture that is not IDR, like the ones at 10 s and 20 s of the
FaceForensics++ clips) is flagged corrupt when the decoder joins there, because later pictures
refer to pictures before it; the gate then waits for the next clean one.

PyAV versions without ``Frame.is_corrupt`` still get the keyframe rule and the packet and
decoding-error rules; frames that FFmpeg itself flags corrupt cannot be seen there (documented
in the README).
"""

from __future__ import annotations

from typing import Any


def frame_is_corrupt(frame: Any) -> bool:
    """True when the decoder flags ``frame`` as corrupt (False where PyAV cannot tell)."""
    return bool(getattr(frame, "is_corrupt", False))


def frame_is_keyframe(frame: Any) -> bool:
    """True for a keyframe (a picture decodable on its own)."""
    key = getattr(frame, "key_frame", None)
    if key is not None:
        return bool(key)
    pict_type = getattr(frame, "pict_type", None)
    return getattr(pict_type, "name", str(pict_type)) == "I"


class FrameGate:
    """Admits the frames of one live source that are safe to analyse (see the module doc).

    ``dropped`` counts every frame refused over the source's life (across reconnects): flagged
    corrupt, or waiting for a clean keyframe. ``reset()`` starts a new connection.
    """

    def __init__(self) -> None:
        self.synced = False
        self.dropped = 0

    def reset(self) -> None:
        """A new connection: wait for a clean keyframe again."""
        self.synced = False

    def lost(self) -> None:
        """A packet was lost or could not be decoded: resync on the next clean keyframe."""
        self.synced = False

    def admit(self, frame: Any) -> bool:
        """True when ``frame`` may be analysed; counts it in ``dropped`` otherwise."""
        if frame_is_corrupt(frame):
            self.synced = False
        elif not self.synced and frame_is_keyframe(frame):
            self.synced = True
        if not self.synced:
            self.dropped += 1
        return self.synced


class PassThroughGate(FrameGate):
    """Admits everything but counts what ``FrameGate`` would drop (benchmarks: the 'before')."""

    def admit(self, frame: Any) -> bool:
        """Always True; ``dropped`` counts the frames ``FrameGate`` would have refused."""
        super().admit(frame)
        return True

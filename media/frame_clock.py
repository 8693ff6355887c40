"""Frame timing of one stream: frames per second and freezes.

A freeze is a gap of more than 500 ms between two video frames (the threshold WebRTC's
own freeze statistics use for a 30 fps stream is ~3 frame times or 150 ms; classrooms
send 15–30 fps over weak links, so 500 ms marks a stall people actually notice).
"""

from __future__ import annotations

import time

FREEZE_SECONDS = 0.5
FPS_WINDOW = 2.0


class FrameClock:
    def __init__(self) -> None:
        self.last: float | None = None
        self.freezes = 0
        self.freeze_seconds = 0.0
        self._window_start = time.monotonic()
        self._window_frames = 0
        self.fps = 0.0

    def tick(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if self.last is not None:
            gap = now - self.last
            if gap > FREEZE_SECONDS:
                self.freezes += 1
                self.freeze_seconds += gap
        self.last = now
        self._window_frames += 1
        elapsed = now - self._window_start
        if elapsed >= FPS_WINDOW:
            self.fps = self._window_frames / elapsed
            self._window_start, self._window_frames = now, 0

    def frozen(self, now: float | None = None) -> bool:
        """No frame for longer than the freeze threshold (after the first one)."""
        now = time.monotonic() if now is None else now
        return self.last is not None and now - self.last > FREEZE_SECONDS

    def current_fps(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        if self.last is None or now - self.last > FPS_WINDOW:
            return 0.0
        return self.fps

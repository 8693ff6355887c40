"""Live HLS for large audiences: what the media plane asks before it packages a room.

The SFU packages (media/hls_packager.py) but does not know room kinds; whoever wires the
processes together (sanke) answers from the room's kind (``SANKE_HLS_KINDS``).
"""

from __future__ import annotations

from typing import Protocol


class HlsHooks(Protocol):
    async def should_package(self, room_id: str) -> bool:
        """Whether this room's teacher is packaged as HLS (asked once per room)."""


class NoHls:
    """A media plane that packages nothing."""

    async def should_package(self, room_id: str) -> bool:
        return False

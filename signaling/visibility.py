"""Who in a room is told about whom."""

from __future__ import annotations

from contracts.rooms import Role


def can_see(viewer: Role, about: Role | None) -> bool:
    """Whether a participant with role ``viewer`` is told about one with role ``about``.

    Observers (巡课) are invisible to everyone. Viewers of a broadcast are shown to
    the teacher only: hundreds of audience joins are noise for classrooms.
    """
    if about is None:
        return True
    if about is Role.observer:
        return False
    if about is Role.viewer:
        return viewer is Role.teacher
    return True

"""Display names: what the other participants see of someone, and what it may not claim.

A name comes from the token (minted by a coordinator or from a registered device); a join
message's ``name`` counts only when the token names no one. Whatever its source, a shown
name is NFC text without control, format (bidirectional overrides, zero-width), surrogate,
private-use or unassigned characters, single-spaced, at most ``NAME_LIMIT`` characters, and
only a teacher's name may carry a teacher label (老师, 主讲教师, teacher, …): a classroom that
calls itself "王老师 (主讲教师)" would pass for the lesson's teacher on every screen.

At the HTTP boundaries (minting a token, registering a device) such names are refused (422);
at a join a claimed label is refused and everything else is cleaned.
"""

from __future__ import annotations

import re
import unicodedata

from contracts.errors import ErrorCode, SankeError
from contracts.rooms import Role

NAME_LIMIT = 64
# Cc control, Cf format (U+202E and the other bidi controls, zero-width), Cs surrogates,
# Co private use, Cn unassigned, Zl/Zp line and paragraph separators.
_DROPPED = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_MARKS = frozenset({"Mn", "Mc", "Me"})
_MAX_MARKS = 2  # combining marks kept per character (no "Zalgo" towers over the UI)
# What only a teacher may be called, compared on NFKC-casefolded letters and digits.
TEACHER_LABELS = ("主讲", "主講", "教师", "教師", "讲师", "講師", "teacher")
# A classroom is not any kind of teacher; a viewer (often a teacher watching a 名师课堂) or an
# observer may be "王老师" but not the lesson's lead teacher.
CLASSROOM_LABELS = (*TEACHER_LABELS, "老师", "老師")
_SPACES = re.compile(r" {2,}")


def bad_characters(text: str) -> list[str]:
    """The characters a name may not contain, as U+XXXX (spaces of any width are fine: they
    are normalized to single spaces; tabs and newlines are control characters)."""
    return [f"U+{ord(ch):04X}" for ch in text if unicodedata.category(ch) in _DROPPED]


def clean_name(raw: str, limit: int = NAME_LIMIT) -> str:
    """``raw`` as a displayable name (see the module docstring)."""
    out: list[str] = []
    marks = 0
    for ch in unicodedata.normalize("NFC", raw):
        if ch.isspace():
            out.append(" ")
            marks = 0
            continue
        category = unicodedata.category(ch)
        if category in _DROPPED:
            continue
        if category in _MARKS:
            marks += 1
            if marks > _MAX_MARKS:
                continue
        else:
            marks = 0
        out.append(ch)
    return _SPACES.sub(" ", "".join(out)).strip()[:limit].strip()


def claims_teacher_label(name: str, role: Role) -> bool:
    """Whether ``name`` would make a participant of ``role`` pass for a teacher."""
    if role in (Role.teacher, Role.coordinator, Role.admin):
        return False
    folded = "".join(ch for ch in unicodedata.normalize("NFKC", name).casefold() if ch.isalnum())
    labels = CLASSROOM_LABELS if role is Role.classroom else TEACHER_LABELS
    return any(label in folded for label in labels)


def name_problem(name: str, role: Role) -> str | None:
    """Why ``name`` may not be given to a ``role`` (a 422 at an HTTP boundary), or None."""
    bad = bad_characters(name)
    if bad:
        return f"control, format or bidirectional characters are not allowed ({', '.join(bad[:3])})"
    if claims_teacher_label(name, role):
        return f"a {role.value}'s name may not carry a teacher label (老师/教师/主讲/teacher)"
    return None


def display_name(role: Role, token_name: str, join_name: str | None, fallback: str) -> str:
    """The name shown for a joining participant: the token's, else the join message's (a
    teacher label refused), else ``fallback`` (the token's subject)."""
    if token_name:
        name = clean_name(token_name)
        if name and not claims_teacher_label(name, role):
            return name
    elif join_name:
        name = clean_name(join_name)
        if claims_teacher_label(name, role):
            raise SankeError(
                ErrorCode.invalid_message,
                f"join: name: a {role.value} may not call itself a teacher",
            )
        if name:
            return name
    return clean_name(fallback)

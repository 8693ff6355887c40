"""What of a client message's envelope may be echoed back in a reply or an error."""

from __future__ import annotations

MAX_RID_CHARS = 64


def echoable_rid(value: object) -> str | None:
    """A message's ``rid`` when it can be echoed back: a string of ≤ 64 characters that is
    valid Unicode. Any other ``rid`` is refused by validation, and that error carries none
    (echoing it would make the error itself invalid)."""
    if not isinstance(value, str) or len(value) > MAX_RID_CHARS:
        return None
    try:
        value.encode()
    except UnicodeEncodeError:  # a lone surrogate, from a JSON \ud800 escape
        return None
    return value


def shown(value: object, limit: int = 80) -> str:
    """A client's value quoted in an error message, cut short (it may be 64 KiB long)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."

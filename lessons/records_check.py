"""Verifying the teaching records: every link, hash and signature, then the signed head and
an optional anchor (an older head kept outside the store), so that deleting the newest
records — or all of them — is reported like any other tampering."""

from __future__ import annotations

from pydantic import ValidationError

from lessons.records import (
    GENESIS,
    Record,
    RecordKeys,
    RecordsHead,
    VerifyReport,
    digest,
    head_text,
)


def verify_lines(
    lines: list[str],
    keys: RecordKeys,
    *,
    head: RecordsHead | None,
    anchor: RecordsHead | None = None,
    require_head: bool = True,
) -> VerifyReport:
    """Check the chain, then that it reaches as far as the signed head and the anchor say.

    ``require_head=False`` (an export file verified without its head) checks the chain only.
    """
    n = len(lines)
    hashes: list[str] = []
    prev_hash = GENESIS
    for index, line in enumerate(lines):
        problem = _problem(line, index, prev_hash, keys)
        if isinstance(problem, str):
            return _broken(n, index, problem, head, anchor)
        prev_hash = problem.hash
        hashes.append(prev_hash)
    if head is None:
        if require_head and n:
            return _broken(
                n, n, "the signed head is missing: records or the head were deleted", None, anchor
            )
    else:
        problem_text = head_problem(head, keys, current_only=True) or _reach(head, hashes, "head")
        if problem_text is not None:
            return _broken(n, min(head.count, n), problem_text, head, anchor)
    if anchor is not None:
        problem_text = head_problem(anchor, keys, current_only=False) or _reach(
            anchor, hashes, "anchor"
        )
        if problem_text is not None:
            return _broken(n, min(anchor.count, n), problem_text, head, anchor)
    return VerifyReport(
        ok=True,
        records=n,
        head=head.count if head else None,
        anchor=anchor.count if anchor else None,
    )


def head_problem(head: RecordsHead, keys: RecordKeys, *, current_only: bool) -> str | None:
    """What is wrong with a head's signature. The store's head must be signed with the
    current key (the app re-signs it after a rotation), so a leaked *old* key cannot
    vouch for a shortened chain; an anchor may be older."""
    if not keys.knows(head.kid) or (
        current_only and (head.kid != keys.kid or head.alg != keys.alg)
    ):
        which = "the current key" if current_only else "a key this verifier has"
        return f"the signed head is not signed with {which} (key id {head.kid})"
    text = head_text(head.count, head.hash, head.at, head.kid, head.alg)
    if not keys.valid(head.alg, head.kid, text, head.signature):
        return "the signed head's signature is not valid"
    return None


def _reach(head: RecordsHead, hashes: list[str], what: str) -> str | None:
    if head.count > len(hashes):
        missing = head.count - len(hashes)
        return f"{missing} newest record(s) missing: the {what} counts {head.count}"
    if hashes[head.count - 1] != head.hash:
        return f"record {head.count - 1} is not the one the {what} names"
    return None


def _broken(
    n: int, index: int, problem: str, head: RecordsHead | None, anchor: RecordsHead | None
) -> VerifyReport:
    return VerifyReport(
        ok=False,
        records=n,
        first_broken=index,
        problem=problem,
        head=head.count if head else None,
        anchor=anchor.count if anchor else None,
    )


def _problem(line: str, index: int, prev_hash: str, keys: RecordKeys) -> str | Record:
    """What is wrong with this record, or the record itself when it is intact."""
    try:
        record = Record.model_validate_json(line)
    except ValidationError as exc:
        return f"unreadable: {exc.errors()[0]['msg']}"
    if record.seq != index:
        return f"sequence {record.seq} at position {index}"
    if record.prev_hash != prev_hash:
        return "does not link to the previous record"
    expected = digest(record.seq, record.at, record.body, record.prev_hash, record.kid, record.alg)
    if expected != record.hash:
        return "content does not match its hash"
    if record.kid is not None and not keys.knows(record.kid):
        return f"signature is made with a key this verifier does not have (id {record.kid})"
    if record.alg is None and record.kid is None and not keys.all():
        return "signature is made with a key this verifier does not have (no key id)"
    # kid None: written before key ids, any HMAC key of the ring.
    if not keys.valid(record.alg, record.kid, record.hash, record.signature):
        return "signature is not valid for this key"
    return record

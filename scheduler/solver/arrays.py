"""numpy helpers for the scheduler's flat arrays (runs of entries stored back to back, as in
CSR: candidates by demand, rows' entries, matrix columns, parts)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def offsets(lengths: npt.ArrayLike) -> IntArray:
    """Where each run starts when runs of these lengths are stored back to back, with the
    total at the end (``len(lengths) + 1`` entries)."""
    counts = np.asarray(lengths, dtype=np.int64)
    out = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=out[1:])
    return out


def ranges(starts: IntArray, lengths: IntArray) -> IntArray:
    """The indices ``starts[k] .. starts[k] + lengths[k] - 1`` of every run, concatenated."""
    ends = offsets(lengths)
    return np.repeat(starts - ends[:-1], lengths) + np.arange(int(ends[-1]), dtype=np.int64)

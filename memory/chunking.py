"""Which consecutive turns of a conversation become one recall chunk.

A chunk is 3-6 consecutive turns: long enough to carry what a remark was about (a question, its
answer and the follow-up), short enough that one embedding still means something specific.
Chunks are written every ``size`` turns while the conversation goes on, and the remainder when
it ends; a remainder too short to stand alone is chunked together with the turns before it
(overlapping the previous chunk), so the last thing said is always findable.
"""

from __future__ import annotations

MIN_TURNS = 3
MAX_TURNS = 6


def plan_chunks(total: int, chunked: int, *, final: bool, size: int = 4) -> list[tuple[int, int]]:
    """The ``[start, end)`` turn ranges to write now.

    Args:
        total: turns in the conversation so far.
        chunked: turns already covered by earlier chunks (a prefix).
        final: the conversation has ended (write the remainder).
        size: turns per chunk while the conversation goes on (3-6).

    Returns:
        Ranges in order; empty when nothing is due yet.
    """
    if not MIN_TURNS <= size <= MAX_TURNS:
        raise ValueError(f"chunk size must be {MIN_TURNS}-{MAX_TURNS} turns, not {size}")
    ranges = []
    start = chunked
    while total - start >= size:
        ranges.append((start, start + size))
        start += size
    left = total - start
    if final and left > 0:
        if left >= MIN_TURNS:
            ranges.append((start, total))
        elif total >= MIN_TURNS:
            ranges.append((total - MIN_TURNS, total))
    return ranges

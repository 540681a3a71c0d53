"""Admission control: who may start a call now.

Two limits, checked before anything of a call is built (no peer connection, no graph, no
model work), so a refused call costs nothing:

- **per person** (``AVATARS_CALLS_PER_PERSON``, 2): a signed-in account's live calls; one more
  is refused with 429 ("You already have 2 calls open ...");
- **the room's capacity** (``AVATARS_ROOM_CAPACITY``, derived from the cores by
  ``bots.capacity``): all live calls; one more is refused with 503 and ``Retry-After`` ("The
  room is full: 6 people are talking. Try again in a minute.").

A call holds its :class:`Seat` from the moment its offer is accepted for checking until its
session ends, or until the offer fails: a burst of 30 offers from one account, all arriving
before any has been answered, still gets exactly 2 calls (the seat is taken before the first
``await``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

RETRY_AFTER_SECS = 60


class Refused(Exception):
    """A call was not admitted; ``status`` and ``message`` are what the page shows."""

    def __init__(self, status: int, message: str, retry_after: int | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        """HTTP headers for the refusal (``Retry-After`` when the room is full)."""
        return {"Retry-After": str(self.retry_after)} if self.retry_after else {}


@dataclass
class Seat:
    """One admitted call (or an offer being answered), until released."""

    id: int
    user_id: str
    _admission: Admission = field(repr=False)
    released: bool = False
    in_call: bool = False
    """A running call holds it (and gives it back when it ends)."""

    def release(self) -> None:
        """Give the seat back (idempotent)."""
        if not self.released:
            self.released = True
            self._admission._seats.pop(self.id, None)


class Admission:
    """The room's live calls, counted per person and in all.

    Args:
        capacity: live calls the room holds.
        per_person: live calls one account may have.
    """

    def __init__(self, capacity: int, per_person: int):
        self.capacity = capacity
        self.per_person = per_person
        self._seats: dict[int, Seat] = {}
        self._ids = itertools.count(1)

    def admit(self, user_id: str) -> Seat:
        """Take a seat for ``user_id``'s new call.

        Raises:
            Refused: 429 beyond the person's limit, 503 when the room is full.
        """
        mine = sum(s.user_id == user_id for s in self._seats.values())
        if mine >= self.per_person:
            calls = "call" if self.per_person == 1 else "calls"
            raise Refused(
                429,
                f"You already have {mine} {calls} open, the most one person may have. Hang up "
                "one of them (or close its tab), then try again.",
            )
        if len(self._seats) >= self.capacity:
            people = len({s.user_id for s in self._seats.values()})
            talking = "1 person is" if people == 1 else f"{people} people are"
            raise Refused(
                503,
                f"The room is full: {talking} talking. Try again in a minute.",
                retry_after=RETRY_AFTER_SECS,
            )
        seat = Seat(next(self._ids), user_id, self)
        self._seats[seat.id] = seat
        return seat

    def stats(self) -> dict:
        """Seats taken, the limits, and how many people hold them (for health and stats)."""
        return {
            "calls": len(self._seats),
            "people": len({s.user_id for s in self._seats.values()}),
            "capacity": self.capacity,
            "per_person": self.per_person,
        }

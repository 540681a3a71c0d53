"""Admission control and the room's capacity: pure logic (``web.admission``, ``bots.capacity``).

Engine slots are in ``test_llm_slots.py``.
"""

from __future__ import annotations

import pytest

from bots.capacity import CALL_CORE_SHARE, default_capacity, room_capacity
from bots.settings import Settings
from web.admission import Admission, Refused


def test_one_person_gets_their_limit_and_then_a_clear_429():
    room = Admission(capacity=10, per_person=2)
    seats = [room.admit("priya"), room.admit("priya")]
    with pytest.raises(Refused) as refused:
        room.admit("priya")
    assert refused.value.status == 429
    assert "already have 2 calls open" in refused.value.message
    assert room.admit("sam")  # someone else still gets in
    seats[0].release()
    assert room.admit("priya")  # a hung-up call frees its seat


def test_a_full_room_refuses_with_503_saying_how_many_people_are_talking():
    room = Admission(capacity=3, per_person=2)
    room.admit("a"), room.admit("a"), room.admit("b")
    with pytest.raises(Refused) as refused:
        room.admit("c")
    assert refused.value.status == 503
    assert refused.value.message == "The room is full: 2 people are talking. Try again in a minute."
    assert refused.value.headers() == {"Retry-After": "60"}


def test_a_burst_from_one_account_gets_exactly_its_limit():
    room = Admission(capacity=8, per_person=2)
    outcomes = []
    for _ in range(30):
        try:
            outcomes.append(room.admit("burst"))
        except Refused as e:
            outcomes.append(e.status)
    assert sum(not isinstance(o, int) for o in outcomes) == 2
    assert outcomes.count(429) == 28


def test_releasing_twice_frees_one_seat():
    room = Admission(capacity=1, per_person=1)
    seat = room.admit("a")
    seat.release()
    seat.release()
    assert room.stats()["calls"] == 0
    room.admit("b")
    with pytest.raises(Refused):
        room.admit("c")


def test_capacity_defaults_from_the_cores():
    assert default_capacity(2) == int(2 / CALL_CORE_SHARE)
    assert default_capacity(1) >= 1
    assert room_capacity(Settings(room_capacity=5)) == 5

"""More machines: the room's call workers as Ray actors on a two-node cluster (on loopback).

A real Ray cluster of two nodes on this machine (``ray.cluster_utils.Cluster``: a head and one
more raylet, one CPU each), the room (``python -m web``) placing 2 workers on it through
``AVATARS_RAY_ADDRESS``. Calls land on both nodes, and each is heard and answered.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import bot_server
from tests.test_room_workers import two_people_talk_at_once, workers_ready

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster_room(llm_backend):
    cluster_utils = pytest.importorskip("ray.cluster_utils")
    cluster = cluster_utils.Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        cluster.add_node(num_cpus=1)
        with bot_server("web", AVATARS_RAY_ADDRESS=cluster.address, AVATARS_WORKERS="2") as base:
            workers = asyncio.run(workers_ready(base, 240))
            yield base, workers
    finally:
        cluster.shutdown()


async def test_calls_land_on_both_nodes_and_each_is_heard_and_answered(cluster_room):
    room, workers = cluster_room
    assert len({w["node"] for w in workers}) == 2, f"both workers on one node: {workers}"
    on = await two_people_talk_at_once(room)
    assert {w["node"] for w in on if w["calls"] == 1} == {w["node"] for w in workers}

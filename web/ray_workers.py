"""Call workers on more machines: each worker a Ray actor, placed on any node of a Ray cluster.

Ray (an actor framework with a scheduler, resource accounting and node failure detection) is
what places the workers; nothing here is a home-made cluster. Set up once per machine, from
this project's venv::

    ray start --head --port 6379 --num-cpus 2          # beside the room
    ray start --address ROOM_HOST:6379 --num-cpus 2    # on every extra machine

then start the room with ``AVATARS_RAY_ADDRESS=ROOM_HOST:6379`` (``auto``: the cluster this
machine is in). The room connects as a Ray driver and creates ``AVATARS_WORKERS`` actors
(default: one per CPU the cluster has), each declaring ``num_cpus=1``, so Ray spreads them
over the nodes. An actor starts ``python -m web.worker`` on its node, bound to the node's
address, supervised there (``bots.supervisor``: readiness URL, restart on crash), and tells
the pool where it listens; from then on the pool places calls, reads loads and hears of
crashes exactly as for local workers (``web.workers``). Pages reach a worker's media directly
(its ICE candidates are its node's addresses), so every node must be reachable from the
testers' machines, as the room is.

A worker on another machine uses that machine's models and the same settings as the room
(its ``AVATARS_*`` environment is passed along): for several hosts, point ``AVATARS_LLM_URLS``
at engines every host reaches and ``AVATARS_MEMORY_URI`` at storage they share (README).
Without ``AVATARS_RAY_ADDRESS`` nothing of Ray is imported or needed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import threading
from typing import Any

from loguru import logger

from bots.settings import Settings
from bots.supervisor import Supervisor
from web.workers import Worker, WorkerPool, _on_loop


class _WorkerProcess:
    """The body of the Ray actor: one supervised ``web.worker`` process on this node."""

    def __init__(self, name: str, args: list[str], env: dict[str, str]):
        import ray

        self.host = ray.util.get_node_ip_address()
        self.node = ray.get_runtime_context().get_node_id()
        with socket.socket() as s:
            s.bind((self.host, 0))
            self.port = s.getsockname()[1]
        cmd = [sys.executable, "-m", "web.worker", "--host", self.host, "--port", str(self.port)]
        self.events: list[tuple[str, int]] = []
        self._changed = threading.Condition()
        self.supervisor = Supervisor(
            name,
            [*cmd, *args],
            f"http://{self.host}:{self.port}/ready",
            ready_timeout=300.0,
            env={**os.environ, **env},
            on_ready=lambda pid: self._event("ready", pid),
            on_exit=lambda code: self._event("exit", code),
        )
        self._thread = threading.Thread(
            target=self.supervisor.run, kwargs={"handle_signals": False}, daemon=True
        )
        self._thread.start()

    def _event(self, kind: str, value: int) -> None:
        with self._changed:
            self.events.append((kind, value))
            self._changed.notify_all()

    def where(self) -> tuple[str, int, str]:
        """The worker's address and port, and this node's id."""
        return self.host, self.port, self.node

    def next_event(self, seen: int) -> tuple[str, int]:
        """Block until the supervisor reports its event number ``seen`` (ready or exit)."""
        with self._changed:
            self._changed.wait_for(lambda: len(self.events) > seen)
            return self.events[seen]

    def stop(self) -> None:
        """Stop the worker process and its supervisor."""
        self.supervisor.stop()
        self._thread.join(timeout=30)


def _passed_env() -> dict[str, str]:
    """The room's own settings, for workers on nodes whose environment is the raylet's."""
    return {k: v for k, v in os.environ.items() if k.startswith(("AVATARS_", "OLLAMA_"))}


class RayWorkerPool(WorkerPool):
    """Worker processes placed as Ray actors on any node of the cluster at ``address``.

    Args:
        settings: the room's settings.
        n: how many workers (0: one per CPU in the cluster).
        address: the Ray cluster (``host:port``, or ``auto``).
        greet: avatars greet people when they connect.
    """

    def __init__(self, settings: Settings, n: int, address: str, *, greet: bool = True):
        import ray

        if not ray.is_initialized():
            try:
                ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
            except ConnectionError as e:
                raise ClusterError(
                    f"No Ray cluster at AVATARS_RAY_ADDRESS={address} ({e}). Start one "
                    "(`ray start --head`, README) or unset AVATARS_RAY_ADDRESS."
                ) from None
        self.ray = ray
        n = n or max(1, int(ray.cluster_resources().get("CPU", 1)))
        self._actors: list[Any] = []
        super().__init__(settings, n, greet=greet)

    def _make_workers(self) -> None:
        # Ports and hosts are known once each actor has started on its node.
        self.workers = [Worker(f"worker-{i + 1}", 0) for i in range(self.n)]

    def _start_workers(self) -> None:
        # One CPU each, so Ray spreads the workers over the nodes' CPUs.
        remote = self.ray.remote(num_cpus=1, max_concurrency=4)(_WorkerProcess)  # pyright: ignore[reportCallIssue]
        for i, worker in enumerate(self.workers):
            env = {**_passed_env(), **self.worker_env(i)}
            actor = remote.remote(worker.name, self.worker_args(worker.name), env)
            self._actors.append(actor)
            self._tasks.append(asyncio.create_task(self._follow(worker, actor)))

    async def _follow(self, worker: Worker, actor: Any) -> None:
        """Mirror one actor's worker process: where it is, when it is ready, when it exits."""
        loop = asyncio.get_running_loop()
        worker.host, worker.port, worker.node = await actor.where.remote()
        logger.info(f"[{worker.name}] placed on node {worker.node[:8]} ({worker.host})")
        seen = 0
        while True:
            kind, value = await actor.next_event.remote(seen)
            seen += 1
            _on_loop(loop, self._on_ready if kind == "ready" else self._on_exit, worker)(value)

    async def _stop_workers(self) -> None:
        await asyncio.gather(*(a.stop.remote() for a in self._actors), return_exceptions=True)
        for actor in self._actors:
            self.ray.kill(actor)


class ClusterError(RuntimeError):
    """The Ray cluster can't be used (not installed, not running); the message says why."""


def ray_worker_pool(settings: Settings, n: int, *, greet: bool = True) -> RayWorkerPool:
    """The pool on ``AVATARS_RAY_ADDRESS``, with a clear error when Ray is missing."""
    try:
        import ray  # noqa: F401
    except ImportError:
        raise ClusterError(
            "AVATARS_RAY_ADDRESS is set but Ray is not installed: run `make install` (it "
            "installs the .[cluster] extra) or unset AVATARS_RAY_ADDRESS"
        ) from None
    return RayWorkerPool(settings, n, settings.ray_address, greet=greet)

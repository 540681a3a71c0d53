"""Choose the LLM server a session talks to: a running Ollama, else the embedded llama.cpp.

Both speak the OpenAI chat-completions API, so the pipeline uses one Pipecat service
(``OpenAILLMService`` with a ``base_url``) for either. Ollama wins when it answers, because a
user who runs Ollama has chosen their models there; the avatar's ``ollama_model`` is pulled
(with a progress bar) if it is missing. Otherwise the embedded server started by
``make llm`` / ``python -m bots.llm_server`` answers with its bundled GGUF.

The embedded engine (``llama-server``) has parallel slots, each with its own prompt cache. A
session asks for a slot of its own (:class:`SlotAllocator`) and sends ``id_slot`` and
``cache_prompt`` with every request, so its conversation stays evaluated between turns and no
other session evicts it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Literal

import httpx
from loguru import logger

from bots.llm_server import MODEL_ALIAS
from bots.settings import Settings


class LLMUnavailableError(RuntimeError):
    """No LLM server answers; the message says how to start one."""


@dataclass(frozen=True)
class LLMBackend:
    """Where to send chat completions."""

    kind: Literal["ollama", "embedded", "openai"]
    """``embedded``: a llama-server (ours or one of ``AVATARS_LLM_URLS``); ``openai``: another
    OpenAI-compatible engine of that list (vLLM, ...)."""
    base_url: str
    model: str
    slots: int = 0
    """The engine's parallel slots (llama-server's ``total_slots``); 0: no slots to pick."""

    def describe(self) -> str:
        """One line for logs and the health endpoint."""
        slots = f", {self.slots} slots" if self.slots else ""
        return f"{self.kind} ({self.model} at {self.base_url}{slots})"

    def request_fields(self, slot: int | None) -> dict:
        """Fields a chat request carries so it lands in its session's slot, cache kept.

        ``id_slot`` and ``cache_prompt`` are llama-server's; other engines get none.
        """
        if not self.slots:
            return {}
        fields: dict = {"cache_prompt": True}
        if slot is not None:
            fields["id_slot"] = slot
        return fields

    @property
    def background_slot(self) -> int | None:
        """The slot kept for requests of no session (warm-up, memory distillation): the last.

        Without one, llama-server gives such a request the idle slot whose cached prompt is
        most alike, which is a session's (the same system prompt), and the session's next
        turn re-reads its whole conversation. None with fewer than 2 slots.
        """
        return self.slots - 1 if self.slots >= 2 else None

    def background_fields(self) -> dict:
        """Request fields for work of no session: into :attr:`background_slot`."""
        return self.request_fields(self.background_slot)

    @property
    def session_slots(self) -> int:
        """Slots sessions may hold (all but :attr:`background_slot`)."""
        return self.slots - 1 if self.background_slot is not None else self.slots


class SlotAllocator:
    """Which engine slot each session of this process holds: one each, lowest free first.

    Processes sharing one engine (the room's call workers) take disjoint shares of its slots:
    worker ``index`` of ``count`` uses slots ``index, index + count, ...``, so two workers
    never pin sessions to the same slot (a slot serves one request at a time and keeps one
    conversation's cache). With more sessions than slots the extra ones hold none
    (``acquire`` returns None) and the engine picks an idle slot for each request, the one
    whose cached prompt is most alike. Thread-safe: sessions start on the event loop, probes
    run in threads.

    Args:
        index: this process's share (0-based).
        count: how many processes share the engine.
    """

    def __init__(self, index: int = 0, count: int = 1) -> None:
        if not 0 <= index < count:
            raise ValueError(f"slot share {index} of {count}")
        self.index, self.count = index, count
        self._held: dict[str, set[int]] = {}
        self._sessions: dict[str, int] = {}  # engine URL -> sessions of this process on it
        self._lock = threading.Lock()

    def acquire(self, backend: LLMBackend) -> int | None:
        """A new session on ``backend``'s engine: a free slot of this process's share, or None.

        Every ``acquire`` is matched by one :meth:`release`.
        """
        with self._lock:
            self._sessions[backend.base_url] = self._sessions.get(backend.base_url, 0) + 1
            held = self._held.setdefault(backend.base_url, set())
            mine = range(self.index, backend.session_slots, self.count)
            free = next((k for k in mine if k not in held), None)
            if free is not None:
                held.add(free)
            return free

    def release(self, backend: LLMBackend, slot: int | None) -> None:
        """A session ended: give its slot back (None: it held none)."""
        with self._lock:
            if self._sessions.get(backend.base_url):
                self._sessions[backend.base_url] -= 1
            if slot is not None:
                self._held.get(backend.base_url, set()).discard(slot)

    def sessions(self, url: str) -> int:
        """This process's live sessions on the engine at ``url``."""
        with self._lock:
            return self._sessions.get(url, 0)

    def held(self, backend: LLMBackend) -> int:
        """How many of ``backend``'s slots are held."""
        with self._lock:
            return len(self._held.get(backend.base_url, ()))


def _get_json(url: str, timeout: float = 1.0) -> dict | None:
    try:
        resp = httpx.get(url, timeout=timeout)
        return resp.json() if resp.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None


class LLMServers:
    """The LLM servers this process may use, as the settings name them.

    One per process (the ``Runtime`` holds it): it remembers the model id each server last
    reported, so a server that is busy writing a reply still counts as up (see
    :meth:`embedded_model`).

    Args:
        settings: where Ollama and the embedded server are, and which to prefer.
    """

    def __init__(self, settings: Settings):
        self.settings = settings
        self._seen_models: dict[str, str] = {}  # server URL -> the model id it last reported
        self._slots: dict[str, int] = {}  # server URL -> its parallel slots (llama-server)
        self.slots = SlotAllocator(*settings.llm_slot_share)

    def ollama_running(self) -> bool:
        """True when an Ollama server answers at ``OLLAMA_HOST``."""
        return _get_json(f"{self.settings.ollama_host.rstrip('/')}/api/version") is not None

    def embedded_model(self) -> str | None:
        """The model id the first engine serves (the embedded one by default), or None."""
        return self.engine_model(self.settings.engine_urls[0])

    def engine_model(self, base_url: str) -> str | None:
        """The model id the engine at ``base_url`` serves, or None when it does not answer.

        A server that accepted the connection but is slow to answer is busy, not down (a
        loaded machine, or an engine that answers between completions only, as
        llama-cpp-python's did): a new call must not be refused with "no LLM server" because
        another person's answer is being written.
        """
        url = f"{base_url}/models"
        try:
            resp = httpx.get(url, timeout=httpx.Timeout(1.0, connect=1.0))
            models = (resp.json() if resp.status_code == 200 else {}).get("data") or []
        except httpx.TimeoutException as e:
            if isinstance(e, httpx.ConnectTimeout):
                return None
            return self._seen_models.get(url, MODEL_ALIAS)  # connected, busy generating
        except (httpx.HTTPError, ValueError):
            return None
        if not models:
            return None
        self._seen_models[url] = models[0].get("id")
        return self._seen_models[url]

    def embedded_slots(self) -> int:
        """The first engine's parallel slots (see :meth:`engine_slots`)."""
        return self.engine_slots(self.settings.engine_urls[0])

    def engine_slots(self, base: str) -> int:
        """An engine's parallel slots (llama-server's ``/props`` ``total_slots``), asked once.

        0 when the server does not say (an engine without slots: vLLM, Ollama).
        """
        if base not in self._slots:
            props = _get_json(f"{base.removesuffix('/v1')}/props")
            if props is None:
                return 0  # ask again next time: it may be starting
            self._slots[base] = int(props.get("total_slots") or 0)
        return self._slots[base]

    def ollama_models(self) -> list[str]:
        """The models the Ollama server at ``OLLAMA_HOST`` has, sorted."""
        import ollama

        client = ollama.Client(host=self.settings.ollama_host)
        return sorted(m.model for m in client.list().models if m.model)

    def ensure_ollama_model(self, model: str) -> None:
        """Pull ``model`` into Ollama if it is not there yet, showing a progress bar."""
        import ollama
        from tqdm import tqdm

        client = ollama.Client(host=self.settings.ollama_host)
        have = set(self.ollama_models())
        if model in have or f"{model}:latest" in have:
            return
        logger.info(f"Ollama does not have {model}; pulling it (one time)")
        bars: dict[str, tqdm] = {}
        for progress in client.pull(model, stream=True):
            digest = progress.get("digest") or progress.get("status", "")
            total = progress.get("total")
            if total and digest not in bars:
                bars[digest] = tqdm(total=total, unit="B", unit_scale=True, desc=f"pull {model}")
            if digest in bars and progress.get("completed"):
                bar = bars[digest]
                bar.update(progress["completed"] - bar.n)
        for bar in bars.values():
            bar.close()

    def resolve(self, ollama_model: str) -> LLMBackend:
        """Pick the backend for an avatar whose preferred Ollama model is ``ollama_model``.

        Blocking (HTTP probes): call it from a worker thread on an event loop.

        Raises:
            LLMUnavailableError: when neither server answers (the message says what to do).
        """
        settings = self.settings
        choice = settings.llm_backend
        if choice in ("auto", "ollama") and self.ollama_running():
            self.ensure_ollama_model(ollama_model)
            return LLMBackend("ollama", f"{settings.ollama_host.rstrip('/')}/v1", ollama_model)
        if choice in ("auto", "embedded"):
            engine = self.pick_engine()
            if engine:
                return engine
        raise LLMUnavailableError(self.unavailable_message())

    def pick_engine(self) -> LLMBackend | None:
        """The engine a new session goes to, or None when none answers.

        Of those answering, the one with the fewest of this process's sessions (ties: the
        first listed). A session keeps its engine (and its slot there) for its whole life:
        its conversation stays cached in one place.
        """
        best: LLMBackend | None = None
        for url in self.settings.engine_urls:
            model = self.engine_model(url)
            if not model:
                continue
            slots = self.engine_slots(url)
            engine = LLMBackend("embedded" if slots else "openai", url, model, slots)
            if best is None or self.slots.sessions(url) < self.slots.sessions(best.base_url):
                best = engine
        return best

    def unavailable_message(self) -> str:
        """What to tell a person when no LLM answers."""
        engines = ", ".join(self.settings.engine_urls)
        return (
            f"No LLM server is reachable (Ollama at {self.settings.ollama_host}, engine at "
            f"{engines}). Start Ollama (`ollama serve`) or run `make llm` (the embedded "
            "llama.cpp server) and try again."
        )

    def health(self) -> dict:
        """Health report: which backend would be used, or what to do."""
        settings = self.settings
        if settings.llm_backend != "embedded" and self.ollama_running():
            return {"ok": True, "backend": "ollama", "url": settings.ollama_host}
        if settings.llm_backend != "ollama":
            engines = [
                {"url": url, "model": model, "slots": self.engine_slots(url)}
                for url in settings.engine_urls
                if (model := self.engine_model(url))
            ]
            if engines:
                first = engines[0]
                return {"ok": True, "backend": "embedded", **first, "engines": engines}
        return {"ok": False, "backend": None, "fix": self.unavailable_message()}

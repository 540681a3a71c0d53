"""Choose the LLM server a session talks to: a running Ollama, else the embedded llama.cpp.

Both speak the OpenAI chat-completions API, so the pipeline uses one Pipecat service
(``OpenAILLMService`` with a ``base_url``) for either. Ollama wins when it answers, because a
user who runs Ollama has chosen their models there; the avatar's ``ollama_model`` is pulled
(with a progress bar) if it is missing. Otherwise the embedded server started by
``make llm`` / ``python -m bots.llm_server`` answers with its bundled GGUF.
"""

from __future__ import annotations

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

    kind: Literal["ollama", "embedded"]
    base_url: str
    model: str

    def describe(self) -> str:
        """One line for logs and the health endpoint."""
        return f"{self.kind} ({self.model} at {self.base_url})"


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

    def ollama_running(self) -> bool:
        """True when an Ollama server answers at ``OLLAMA_HOST``."""
        return _get_json(f"{self.settings.ollama_host.rstrip('/')}/api/version") is not None

    def embedded_model(self) -> str | None:
        """The model id the embedded server serves, or None when it is not running.

        llama-cpp-python answers ``/v1/models`` only between completions (the route takes the
        model's lock), so while it streams someone's reply the probe times out. A server that
        accepted the connection but is slow to answer is busy, not down: a new call must not be
        refused with "no LLM server" because another person's answer is being written.
        """
        url = f"{self.settings.embedded_llm_url}/models"
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
            model = self.embedded_model()
            if model:
                return LLMBackend("embedded", settings.embedded_llm_url, model)
        raise LLMUnavailableError(self.unavailable_message())

    def unavailable_message(self) -> str:
        """What to tell a person when no LLM answers."""
        return (
            f"No LLM server is reachable (Ollama at {self.settings.ollama_host}, embedded server "
            f"at {self.settings.embedded_llm_url}). Start Ollama (`ollama serve`) or run "
            "`make llm` (the embedded llama.cpp server) and try again."
        )

    def health(self) -> dict:
        """Health report: which backend would be used, or what to do."""
        settings = self.settings
        if settings.llm_backend != "embedded" and self.ollama_running():
            return {"ok": True, "backend": "ollama", "url": settings.ollama_host}
        model = self.embedded_model() if settings.llm_backend != "ollama" else None
        if model:
            return {
                "ok": True,
                "backend": "embedded",
                "url": settings.embedded_llm_url,
                "model": model,
            }
        return {"ok": False, "backend": None, "fix": self.unavailable_message()}

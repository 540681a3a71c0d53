"""Whether a transcript reads as a finished sentence, from the LLM engine's next-token odds.

Smart-turn v3 judges the voice alone, and on this product's test voices it is wrong both ways
(measured, ``tests/test_sentence_end.py``): "Tell me a joke about computers." sounds
unfinished to it (p 0.02-0.21 with up to 0.5 s of silence), "What do you think is the best
way to" sounds finished (0.93). The words settle most of these. LiveKit's turn detector reads
them with a small language model (SmolLM2-135M fine-tuned to predict the end of a user's
message); the engine here already runs SmolLM2-135M, so we ask it the same question without
a second model: after the chat template's opening of a user message and the transcript
(case kept, final punctuation dropped), how likely is the next token to end the sentence (``.``,
``?``, ``!``, or the end of the message)?

Measured on the default model: finished sentences 0.04-0.89, sentences cut off after "to",
"of", "with", "recommend", "is" 0.000-0.001, and the worst fragment seen 0.036 ("Could you
tell me the name mode", whisper mishearing a pause after "name of"). So a score of at least
:data:`FINISHED` reads as finished, below :data:`UNFINISHED` as cut off, and anything between
is left to smart-turn. ``processors.smart_turn_stop`` acts on "finished" only, and asks only
when smart-turn heard the turn unfinished. A check costs one forward pass of ~15-25 tokens
(20-60 ms on 2 cores alone, ~100 ms beside a reply's prompt) in the engine's background slot,
so it never evicts a conversation's prompt cache.

Only llama.cpp's ``llama-server`` (the embedded engine) reports next-token probabilities
through its ``/completion`` API; with Ollama there is no check and smart-turn decides alone.
Any failure (engine busy past ``timeout_secs``, down, an unexpected answer) gives ``None``:
the turn then ends as it would without the check, never later.
"""

from __future__ import annotations

import math
import re
from typing import Literal

import httpx
from loguru import logger

FINISHED = 0.05
"""At least this probability of a sentence end: the words read as a finished sentence."""
UNFINISHED = 0.01
"""Below this: the words stop mid-phrase."""

Verdict = Literal["finished", "unfinished"]

_END_PUNCTUATION = frozenset(".?!")
_TRAILING = re.compile(r"[\s.?!,;:…\"')\]]+$")
_MARKER = "\x00TRANSCRIPT\x00"


def verdict(score: float | None) -> Verdict | None:
    """What a score says: finished, unfinished, or nothing either way (None)."""
    if score is None:
        return None
    if score >= FINISHED:
        return "finished"
    if score < UNFINISHED:
        return "unfinished"
    return None


def _is_end(token: str) -> bool:
    text = token.strip()
    if text and set(text) <= _END_PUNCTUATION:
        return True
    # End-of-message tokens of the common chat templates: <|im_end|>, <|eot_id|>, </s>, ...
    return (text.startswith("<|") and text.endswith("|>")) or text in ("</s>", "<end_of_turn>")


def end_probability(top_logprobs: list[dict]) -> float:
    """The probability mass of sentence-ending tokens among llama-server's top candidates."""
    return sum(math.exp(t["logprob"]) for t in top_logprobs if _is_end(str(t.get("token", ""))))


class SentenceEndScorer:
    """Asks llama-server how likely a user's words are to end where they stop.

    Args:
        base_url: the engine's OpenAI-compatible URL (``.../v1``), as ``LLMBackend`` has it.
        slot: the engine slot to use (``LLMBackend.background_slot``).
        timeout_secs: longest a check may take; later it is treated as no answer.
    """

    def __init__(self, base_url: str, *, slot: int | None, timeout_secs: float = 0.25):
        self._root = base_url.rstrip("/").removesuffix("/v1")
        self._slot = slot
        # llama-server closes connections after a reply; reusing one it is closing costs a
        # retry (see bots.pipeline.LocalLLMService.create_client), a new loopback one < 1 ms.
        self._client = httpx.AsyncClient(
            timeout=timeout_secs, limits=httpx.Limits(max_keepalive_connections=0)
        )
        self._prefix: str | None = None
        self._scores: dict[str, float | None] = {}

    async def _user_prefix(self) -> str:
        # The model's own chat template, up to where a user's words go.
        if self._prefix is None:
            messages = [{"role": "user", "content": _MARKER}]
            r = await self._client.post(f"{self._root}/apply-template", json={"messages": messages})
            r.raise_for_status()
            prompt = str(r.json()["prompt"])
            if _MARKER not in prompt:
                raise ValueError("the chat template dropped the message")
            self._prefix = prompt.split(_MARKER)[0]
        return self._prefix

    async def score(self, text: str) -> float | None:
        """Probability that ``text`` (a transcript) is a whole sentence; None if unknown."""
        words = _TRAILING.sub("", text.strip())
        if not words:
            return None
        if words in self._scores:
            return self._scores[words]
        body: dict = {
            "n_predict": 1,
            "n_probs": 20,
            "temperature": 0,
            "cache_prompt": True,
        }
        if self._slot is not None:
            body["id_slot"] = self._slot
        try:
            body["prompt"] = await self._user_prefix() + words
            r = await self._client.post(f"{self._root}/completion", json=body)
            r.raise_for_status()
            score = end_probability(r.json()["completion_probabilities"][0]["top_logprobs"])
        except (httpx.HTTPError, KeyError, IndexError, TypeError, ValueError) as e:
            logger.debug(f"sentence-end check of {words!r} gave nothing ({e!r})")
            return None
        self._scores = {words: score}  # one turn's words: the eager and final passes agree
        logger.debug(f"sentence-end check: {score:.3f} for {words!r}")
        return score

    async def check(self, text: str) -> Verdict | None:
        """The :func:`verdict` on :meth:`score` (``processors.smart_turn_stop`` asks this)."""
        return verdict(await self.score(text))

    async def close(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()

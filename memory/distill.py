"""Memory cards distilled by the LLM from a finished conversation.

``Distiller.distill(turns)`` asks the configured LLM (the same OpenAI-compatible server the
avatars use) for short facts worth remembering, then keeps only the ones that are grounded in
what the person actually said: most of a fact's content words must occur in the user's turns.
Small models invent; this check is what makes an invented fact cost nothing but a dropped line.
Facts about the person become ``user`` cards; lines about what the two of them did or agreed
("We planned a trip to Lisbon") become ``avatar`` cards, shared with this avatar only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from loguru import logger

from memory.store import Scope, Turn

_STOP = {
    "the", "a", "an", "and", "or", "but", "is", "are", "was", "were", "be", "to", "of", "in",
    "on", "at", "for", "with", "about", "that", "this", "it", "they", "their", "them", "he",
    "she", "his", "her", "user", "user's", "we", "our", "you", "your", "has", "have", "had",
    "likes", "like", "loves", "called", "named", "name", "who", "what", "very", "really", "also",
    "want", "wants", "would", "will", "talked", "discussed", "said", "says", "told", "i", "my",
    "me", "not", "does", "do", "did", "from", "by", "as", "so", "some", "any", "can", "lot",
}  # fmt: skip

PROMPT = """Here is a conversation between {person} (User) and {avatar}.

{lines}

List the facts about {person} that are worth remembering for future conversations: names, \
family, pets, home, work, likes and dislikes, plans. Also list anything {person} and {avatar} \
agreed or planned together, starting with "We". One short sentence per line, each line \
starting with "- ". Only write facts that {person} actually said. If there are none, write \
"- none"."""


@dataclass
class DistilledFact:
    """A fact the LLM found, with the user turns it rests on."""

    text: str
    scope: Scope
    source_turn_ids: list[str]


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9']+", text.lower()) if w not in _STOP and len(w) > 2}


def grounded_facts(
    reply: str, turns: list[Turn], person: str | None, avatar_name: str
) -> list[DistilledFact]:
    """The lines of an LLM reply that are facts supported by the user's own words."""
    user_turns = [t for t in turns if t.role == "user"]
    said = set().union(*(_words(t.text) for t in user_turns)) if user_turns else set()
    subject = person or "The user"
    out: list[DistilledFact] = []
    for raw in reply.splitlines():
        line = raw.strip()
        if not line.startswith(("-", "*")):
            continue
        line = line.lstrip("-* ").strip().rstrip(".") + "."
        words = line.split()
        if not 3 <= len(words) <= 25 or "?" in line or line.lower().startswith("none"):
            continue
        # First person from the model means the user ("My dog ..." -> "Priya's dog ...").
        line = re.sub(r"^My ", f"{subject}'s ", line)
        line = re.sub(r"^I ", f"{subject} ", line)
        content = _words(line) - _words(avatar_name) - _words(subject)
        if not content:
            continue
        support = len(content & said) / len(content)
        if support < 0.7:
            logger.debug(f"memory distill: dropped ungrounded {line!r} ({support:.0%})")
            continue
        scope: Scope = "avatar" if re.match(r"^(we|you and|together)\b", line, re.I) else "user"
        sources = [t.id for t in user_turns if _words(t.text) & content]
        out.append(DistilledFact(line, scope, sources))
    return out


class Distiller:
    """Asks an OpenAI-compatible server for memorable facts.

    Args:
        base_url: the server's ``/v1`` URL.
        model: model name to ask.
        timeout_secs: give up after this long (the session is over; nobody waits on it).
        max_turns: only the last N turns are shown (small models have small contexts).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        timeout_secs: float = 60.0,
        max_turns: int = 24,
        extra_body: dict | None = None,
    ):
        self.base_url = base_url
        self.model = model
        self.extra_body = extra_body or {}
        """Engine fields (llama-server's ``id_slot``: a slot no conversation holds)."""
        self.timeout_secs = timeout_secs
        self.max_turns = max_turns

    def distill(
        self, turns: list[Turn], person: str | None, avatar_name: str
    ) -> list[DistilledFact]:
        """Grounded facts from a conversation (blocking; [] if the server fails)."""
        from openai import OpenAI

        recent = turns[-self.max_turns :]
        if not any(t.role == "user" for t in recent):
            return []
        lines = "\n".join(
            f"{'User' if t.role == 'user' else avatar_name}: {t.text}" for t in recent
        )
        prompt = PROMPT.format(person=person or "the user", avatar=avatar_name, lines=lines)
        try:
            client = OpenAI(base_url=self.base_url, api_key="local", timeout=self.timeout_secs)
            reply = client.chat.completions.create(
                model=self.model,
                messages=[{"role": "user", "content": prompt}],
                temperature=0.1,
                max_tokens=160,
                extra_body=self.extra_body or None,
            )
            text = reply.choices[0].message.content or ""
        except Exception as e:
            logger.warning(f"memory distill: the LLM could not be asked ({e}); patterns only")
            return []
        return grounded_facts(text, recent, person, avatar_name)

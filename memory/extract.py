"""Facts from what a person says, by pattern: works with any LLM, even a 135M-parameter one.

``extract_facts("My dog is called Biscuit and I love jazz.")`` returns two :class:`Fact`s:
``pet/named:dog`` -> "The user's dog is called Biscuit." and ``pref:jazz`` -> "The user likes
jazz." Each fact has a ``key`` naming its slot, so a changed fact ("my dog is called Rex")
replaces the old card instead of sitting next to it, and "I hate jazz" replaces "I like jazz".

Why patterns and not only the LLM: the default model (SmolLM2-135M) cannot reliably distill
facts, and the ones people most expect to be remembered (their name, their pets' and family's
names, what they like) are said in a handful of stock phrasings. The LLM distiller
(``memory.distill``) adds what the patterns miss when a capable model is configured.

The profile block (``render_profile``) is built from the keyed cards: who the person is, what
to call them, stable preferences.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from memory.store import Card

# Words that follow "I'm" / "call me" / "my name is" but are not names.
_NOT_NAMES = {
    "a", "an", "the", "not", "just", "so", "very", "really", "fine", "good", "great", "okay",
    "ok", "sorry", "sure", "here", "back", "going", "trying", "happy", "sad", "tired", "busy",
    "glad", "well", "also", "still", "from", "in", "at", "on", "afraid", "done", "ready",
    "thinking", "looking", "feeling", "doing", "having", "getting", "working", "talking",
    "listening", "curious", "interested", "new", "old", "excited", "hungry", "bored", "fine.",
    "called", "named", "what", "that", "this", "it", "you", "me", "i", "all", "right", "hi",
    "hello", "hey", "alright", "kind", "sort", "about", "like", "now", "then",
}  # fmt: skip
# "I like ..." objects that are not preferences worth remembering.
_NOT_PREFERENCES = {
    "it", "that", "this", "them", "you", "him", "her", "those", "these", "what", "your",
    "the idea", "that idea", "this idea", "to", "how",
}  # fmt: skip
# "my X is ..." subjects that are chatter, not facts about the person.
_NOT_ATTRIBUTES = {
    "question", "point", "guess", "bad", "pleasure", "turn", "problem", "answer", "idea",
    "opinion", "feeling", "thought", "concern", "fault", "mistake", "understanding", "plan",
}  # fmt: skip
# "I have a ..." objects that are not possessions.
_NOT_POSSESSIONS = {
    "question", "problem", "idea", "minute", "second", "feeling", "lot", "bit", "few",
    "thought", "good", "great", "hard", "headache", "cold", "meeting", "look", "try",
}  # fmt: skip

# A changed fact is often said with "now" ("my dog is called Rex now"): not part of the value.
_NOW = r" (?:now|these days|nowadays|anymore|at the moment)"
_END = (
    r"(?=$|[.,!?;:]| and | but | because | so | which | who | though | although "
    r"|" + _NOW + r"\b)"
)
_NAME = r"([A-Za-z][A-Za-z'-]{1,24}(?:(?!" + _NOW + r"\b) [A-Z][A-Za-z'-]{1,24})?)"
_THING = r"((?:[a-z]+ ){0,2}[a-z]+)"  # one to three lowercase words: "dog", "best friend"
_VALUE = r"([^.,!?;:]{1,60}?)"


@dataclass(frozen=True)
class Fact:
    """One thing a person said about themselves.

    Attributes:
        key: the slot it fills (same key, same slot: a newer fact replaces an older one).
        text: the card text, about "The user" (``render`` puts the person's name in).
        value: the bare value ("Biscuit", "jazz"), for the profile.
    """

    key: str
    text: str
    value: str

    def render(self, name: str | None) -> str:
        """The card text with the person's name as the subject, when it is known."""
        if not name or self.key == "name":
            return self.text
        return self.text.replace("The user's", f"{name}'s").replace("The user", name)


def _clean(value: str, max_words: int = 8) -> str:
    """Trim a captured value: filler at the end, surrounding punctuation, overlong tails."""
    value = re.sub(r"\s+", " ", value).strip(" '\"-")
    value = re.sub(
        r"\b(too|as well|a lot|very much|so much|though|really|originally)$",
        "",
        value,
        flags=re.IGNORECASE,
    ).strip()
    words = value.split()
    return " ".join(words[:max_words])


def _is_name(word: str) -> bool:
    first = word.split()[0]
    return first.lower() not in _NOT_NAMES and first.isalpha() and len(first) >= 2


def _title(name: str) -> str:
    return " ".join(w[:1].upper() + w[1:] for w in name.split())


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+", text) if s.strip()]


def extract_facts(text: str) -> list[Fact]:
    """Every fact the patterns find in one user turn (in the order said, later ones winning)."""
    facts: dict[str, Fact] = {}

    def add(fact: Fact) -> None:
        facts.pop(fact.key, None)
        facts[fact.key] = fact

    for sentence in _sentences(text):
        s = " " + sentence.rstrip(".!? ")
        # Names: "my name is Priya", "I'm called Priya", "I am Priya", "call me Pri".
        for pattern in (r" my name is " + _NAME, r" i(?:'m| am) called " + _NAME):
            m = re.search(pattern + _END, s, flags=re.IGNORECASE)
            if m and _is_name(m.group(1)):
                name = _title(m.group(1))
                add(Fact("name", f"The user's name is {name}.", name))
        m = re.search(r"(?:^|[,.!] | )(?:I'm|I am|i'm|i am) ([A-Z][a-z'-]{1,24})" + _END, s)
        if m and _is_name(m.group(1)):
            add(Fact("name", f"The user's name is {m.group(1)}.", m.group(1)))
        m = re.search(r" (?:please )?call me " + _NAME + _END, s, flags=re.IGNORECASE)
        if m and _is_name(m.group(1)):
            nick = _title(m.group(1))
            add(Fact("address", f"The user likes to be called {nick}.", nick))
        # Named companions: "my dog is called Biscuit", "my sister's name is Ana",
        # "I have a cat named Pepper", "the name of my dog is Biscuit".
        named = (
            r" my " + _THING + r" is (?:called|named) " + _NAME,
            r" my " + _THING + r"'s name is " + _NAME,
            r" the name of my " + _THING + r" is " + _NAME,
            r" i (?:have|got|own) an? " + _THING + r" (?:called|named) " + _NAME,
            r" i (?:have|got|own) an? " + _THING + r" whose name is " + _NAME,
        )
        for pattern in named:
            for m in re.finditer(pattern + _END, s, flags=re.IGNORECASE):
                thing, name = m.group(1).lower(), _title(m.group(2))
                if thing in _NOT_ATTRIBUTES or not _is_name(name):
                    continue
                add(Fact(f"named:{thing}", f"The user's {thing} is called {name}.", name))
        # Favourites: "my favorite color is green".
        for m in re.finditer(
            r" my favou?rite " + _THING + r" is " + _VALUE + _END, s, flags=re.IGNORECASE
        ):
            thing, value = m.group(1), _clean(m.group(2))
            if value:
                add(Fact(f"favorite:{thing}", f"The user's favorite {thing} is {value}.", value))
        # Other attributes: "my birthday is in May", "my job is teaching".
        for m in re.finditer(r" my " + _THING + r" is " + _VALUE + _END, s, flags=re.IGNORECASE):
            thing, value = m.group(1), _clean(m.group(2))
            if (
                not value
                or thing in _NOT_ATTRIBUTES
                or thing == "name"
                or thing.startswith(("favorite", "favourite"))
                or value.split()[0].lower() in ("called", "named")  # a name the STT lost
            ):
                continue
            add(Fact(f"my:{thing}", f"The user's {thing} is {value}.", value))
        # Preferences; dislikes first ("I don't like" also contains "like").
        disliked = re.search(
            r" i (?:really |just |also )?(?:don't like|do not like|dislike|hate|can't stand"
            r"|cannot stand|don't enjoy) " + _VALUE + _END,
            s,
            flags=re.IGNORECASE,
        )
        if disliked and (value := _clean(disliked.group(1), 6)) not in _NOT_PREFERENCES:
            add(Fact(f"pref:{value}", f"The user dislikes {value}.", value))
        liked = re.search(
            r" i (?:really |just |also |absolutely )?(?:like|love|enjoy|adore) " + _VALUE + _END,
            s,
            flags=re.IGNORECASE,
        )
        value = _clean(liked.group(1), 6) if liked else ""
        vague = value.startswith(("to ", "it ", "that ", "this ", "you ", "in "))
        if value and value not in _NOT_PREFERENCES and not vague:
            add(Fact(f"pref:{value}", f"The user likes {value}.", value))
        # Where they live and come from, what they do, how old they are.
        # Whisper often hears "I live in Boston" as "I like/love/leave in Boston"; nobody
        # likes "in", so before a place name those mean where they live.
        lives = r" i live in "
        if " live in " not in s:
            lives = r" i (?:live|like|love|leave) in (?=(?-i:[A-Z]))"
        if m := re.search(lives + _VALUE + _END, s, flags=re.IGNORECASE):
            place = _clean(m.group(1), 5)
            add(Fact("home", f"The user lives in {place}.", place))
        if m := re.search(
            r" i(?:'m| am) (?:originally )?from " + _VALUE + _END, s, flags=re.IGNORECASE
        ):
            place = _clean(m.group(1), 5)
            add(Fact("origin", f"The user is from {place}.", place))
        if m := re.search(r" i work (as an?|at|for|in) " + _VALUE + _END, s, flags=re.IGNORECASE):
            where = _clean(m.group(2), 6)
            add(Fact("work", f"The user works {m.group(1)} {where}.", f"{m.group(1)} {where}"))
        if m := re.search(r" i(?:'m| am) (\d{1,3}) years? old", s, flags=re.IGNORECASE):
            add(Fact("age", f"The user is {m.group(1)} years old.", m.group(1)))
        if m := re.search(
            r" i (?:have|own|got) (an?|two|three|\d) " + _THING + _END, s, flags=re.IGNORECASE
        ):
            count, thing = m.group(1), m.group(2)
            named_too = re.search(r" (?:called|named|whose) ", f" {thing} ")
            if thing.split()[0].lower() not in _NOT_POSSESSIONS and not named_too:
                add(Fact(f"has:{thing}", f"The user has {count} {thing}.", f"{count} {thing}"))
    return list(facts.values())


def profile_name(cards: list[Card]) -> str | None:
    """The person's name, from their ``name`` card."""
    for card in cards:
        m = re.search(r"name is (.+?)\.?$", card.text) if card.key == "name" else None
        if m and card.scope == "user":
            return m.group(1)
    return None


def render_profile(cards: list[Card], max_chars: int = 600) -> str:
    """A compact "about you" block from the person's keyed ``user`` cards ('' if none).

    Order: name and what to call them, then where they live / work / age, named companions,
    favourites and preferences (newest first). Bounded by ``max_chars`` so it stays cheap.
    """
    keyed = sorted(
        (c for c in cards if c.scope == "user" and c.key), key=lambda c: c.updated, reverse=True
    )
    by_key = {c.key: c for c in reversed(keyed)}  # newest wins
    name = profile_name(keyed)
    lines = []
    nick = None
    if "address" in by_key and (m := re.search(r"called (.+?)\.?$", by_key["address"].text)):
        nick = m.group(1)
    if name:
        lines.append(f"Name: {name}" + (f" (prefers to be called {nick})." if nick else "."))
    elif nick:
        lines.append(f"Prefers to be called {nick}.")
    order = ("home", "origin", "work", "age", "named:", "has:", "favorite:", "my:")
    for prefix in order:
        for card in keyed:
            if card.key == prefix or (prefix.endswith(":") and card.key.startswith(prefix)):
                lines.append(card.text)
    prefs = [c for c in keyed if c.key.startswith("pref:")]
    likes = [c.text.split(" likes ", 1)[1].rstrip(".") for c in prefs if " likes " in c.text]
    dislikes = [
        c.text.split(" dislikes ", 1)[1].rstrip(".") for c in prefs if " dislikes " in c.text
    ]
    if likes:
        lines.append("Likes: " + ", ".join(likes[:8]) + ".")
    if dislikes:
        lines.append("Dislikes: " + ", ".join(dislikes[:8]) + ".")
    out = []
    total = 0
    for line in dict.fromkeys(lines):
        if name:
            line = line.replace("The user's", f"{name}'s").replace("The user", name)
        if total + len(line) > max_chars:
            break
        out.append(line)
        total += len(line) + 1
    return "\n".join(out)

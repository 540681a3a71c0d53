"""Does the avatar *say* what it remembers? Recall scored on its answers, spoken or not.

    .venv/bin/python -m bench.recall                 # spoken, the shipped prompt profile
    .venv/bin/python -m bench.recall --text --levers # text only: every lever, 4 samples each

Four people tell Lumina 24 facts of the kinds ``memory.extract`` knows (name, home, origin,
work, age, pets and family by name, favourites, likes and dislikes), each person in a voice of
their own (Piper at two speeds, two espeak-ng voices), in a first call; in a second call
three of them change a fact ("My dog is called Rex now."); in a third they ask: directly
("Where do I live?"), indirectly ("Is it cold where I live right now?"), and about the changed
facts. Each answer is scored for carrying the right fact (fuzzy, so "Bizkit" counts for
"Biscuit"), for claiming a wrong one (the old value of a changed fact, or another person's),
and for speaking prompt text.

* **spoken** (default): the whole voice graph in this process (``VoiceSession`` on a scripted
  transport: the same graph as a call, with the embedded LLM server), the questions spoken,
  the avatar's audio transcribed with whisper.cpp. The memory is what the calls stored.
* ``--text``: no speech; the told sentences go through the same fact extraction and store,
  and each question through the same retrieval and prompt building as a call, to the same
  LLM with the avatar's sampling. Fast enough to compare the levers (``--levers``).

The text mode also asks a stronger model through Ollama (``--ollama``, default llama3.2:3b,
with its shipped ``capable`` profile), a skipped row when no Ollama is running.
Writes ``bench/results/recall*.{json,md}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import numpy as np
from rapidfuzz import fuzz

from bench.servers import free_port, llm_server
from bots.config import BUILTIN_AVATARS, AvatarConfig
from memory.extract import extract_facts
from memory.prompting import FACTS_HEADER, Profile, memory_messages
from memory.recall import SCAFFOLDING, Recaller
from memory.store import MemoryStore
from processors.scaffolding_guard import echoes_scaffolding, shingles
from testkit.heard import carries, transcribe_played

OUT = Path(__file__).parent / "results"


@dataclass(frozen=True)
class Question:
    """A question, the values a right answer carries (any one), and wrong values."""

    text: str
    kind: str  # direct | indirect | changed | other (not about the person; timed only)
    right: tuple[str, ...]
    wrong: tuple[str, ...] = ()


@dataclass(frozen=True)
class Person:
    name: str
    voice: str  # piper:<length scale> | espeak:<voice>
    told: tuple[str, ...]
    changed: tuple[str, ...]
    questions: tuple[Question, ...]


Q = Question
PEOPLE = (
    Person(
        "Priya",
        "piper:1.0",
        (
            "Hi, my name is Priya.",
            "I live in Boston.",
            "My dog is called Biscuit.",
            "I work as a nurse.",
            "My favorite color is green.",
            "I love jazz.",
        ),
        ("My dog is called Rex now.",),
        (
            Q("What is my name?", "direct", ("priya",), ("tom", "lena", "marco")),
            Q("Where do I live?", "direct", ("boston",), ("denver", "chicago", "seattle")),
            Q("What is my favorite color?", "direct", ("green",)),
            Q("What do I do for a living?", "direct", ("nurse",), ("teacher", "writer")),
            Q("What kind of music do I like?", "direct", ("jazz",)),
            Q("What is my dog called?", "changed", ("rex",), ("biscuit", "bizkit")),
            Q("Is it cold where I live right now?", "indirect", ("boston",), ("denver",)),
            Q("What should I wear to work tomorrow?", "indirect", ("nurse", "scrubs")),
        ),
    ),
    Person(
        "Tom",
        "espeak:en-us",
        (
            "My name is Tom.",
            "I live in Denver.",
            "My sister is called Anna.",
            "I am 42 years old.",
            "I hate mushrooms.",
            "My favorite food is pizza.",
        ),
        ("I live in Seattle now.",),
        (
            Q("What is my name?", "direct", ("tom",), ("priya", "lena", "marco")),
            Q("How old am I?", "direct", ("42", "forty two", "forty-two")),
            Q("What is my sister's name?", "direct", ("anna", "ana"), ("pepper", "leo")),
            Q("What is my favorite food?", "direct", ("pizza",)),
            Q("What food do I hate?", "direct", ("mushroom",)),
            Q("Where do I live?", "changed", ("seattle",), ("denver", "boston", "chicago")),
            Q("Can you suggest a gift for my sister?", "indirect", ("anna", "ana")),
            Q("What should I cook tonight?", "indirect", ("pizza", "mushroom")),
        ),
    ),
    Person(
        "Lena",
        "espeak:en-us+f3",
        (
            "My name is Lena.",
            "I am from Berlin.",
            "My cat is named Pepper.",
            "I work at a bakery.",
            "My birthday is in May.",
            "I love hiking.",
        ),
        ("My cat is named Luna now.",),
        (
            Q("What is my name?", "direct", ("lena", "lina"), ("priya", "tom", "marco")),
            Q("Where am I from?", "direct", ("berlin",), ("boston", "denver", "chicago")),
            Q("Where do I work?", "direct", ("bakery",), ("nurse", "teacher")),
            Q("When is my birthday?", "direct", ("may",)),
            Q("What do I love to do?", "direct", ("hiking", "hike")),
            Q("What is my cat called?", "changed", ("luna",), ("pepper",)),
            Q("What toy should I buy for my cat?", "indirect", ("luna",), ("pepper",)),
            Q("What should I do at work tomorrow?", "indirect", ("bakery", "bread")),
        ),
    ),
    Person(
        "Marco",
        "piper:1.15",
        (
            "My name is Marco.",
            "I live in Chicago.",
            "My son is called Leo.",
            "My favorite sport is tennis.",
            "I like chess.",
            "I work as a teacher.",
        ),
        (),
        (
            Q("What is my name?", "direct", ("marco",), ("priya", "tom", "lena")),
            Q("Where do I live?", "direct", ("chicago",), ("boston", "denver", "seattle")),
            Q("What is my son called?", "direct", ("leo",), ("anna", "rex")),
            Q("What is my favorite sport?", "direct", ("tennis",)),
            Q("What do I do for work?", "direct", ("teacher", "teach"), ("nurse",)),
            Q("What game do I like?", "direct", ("chess",)),
            Q("Is it windy where I live?", "indirect", ("chicago",), ("boston",)),
            Q("What should my son and I do this weekend?", "indirect", ("leo",)),
        ),
    ),
)


OTHER_QUESTIONS = (
    Question("Can you tell me a fun fact about the moon?", "other", ()),
    Question("What is a good way to relax after a long day?", "other", ()),
)
"""Asked in the question call too (spoken mode), as the turns memory questions are timed
against: the same session, context and retrieval, no remembered fact to answer with."""


@dataclass
class Answer:
    person: str
    question: str
    kind: str
    answer: str
    right: bool
    wrong: bool
    prompt_text: bool
    prefill: str = ""
    heard: str = ""
    """Spoken mode: the question as the STT heard it."""
    stored: bool = True
    """Spoken mode: whether the person's memory holds the right value (as the STT heard it
    when they told it); a miss where it does not is the STT's, not recall's."""
    voice_to_voice_ms: float | None = None
    """Spoken mode: end of the question's speech to the avatar's first audio (server side)."""


@dataclass
class Score:
    answers: list[Answer] = field(default_factory=list)

    def rate(self, kind: str | None, what: str) -> str:
        rows = [a for a in self.answers if kind is None or a.kind == kind]
        if not rows:
            return "-"
        hits = sum(getattr(a, what) for a in rows)
        return f"{hits}/{len(rows)} ({100 * hits / len(rows):.0f} %)"

    def latency(self, memory: bool) -> str:
        """Median voice-to-voice of memory questions (or of the other questions), in ms."""
        times = [
            a.voice_to_voice_ms
            for a in self.answers
            if a.voice_to_voice_ms is not None and (a.kind != "other") == memory
        ]
        return f"{np.median(times):.0f} ms (n={len(times)})" if times else "-"

    def summary(self) -> dict:
        fair = Score([a for a in self.answers if a.stored and _heard_right(a)])
        recall = Score([a for a in self.answers if a.kind != "other"])
        return {
            "direct": self.rate("direct", "right"),
            "direct, stored and heard right": fair.rate("direct", "right"),
            "indirect": self.rate("indirect", "right"),
            "changed": self.rate("changed", "right"),
            "wrong fact": recall.rate(None, "wrong"),
            "prompt text": self.rate(None, "prompt_text"),
            "voice-to-voice p50, memory questions": self.latency(memory=True),
            "voice-to-voice p50, other questions": self.latency(memory=False),
        }


def _heard_right(a: Answer) -> bool:
    """Whether the STT heard the question as asked (text mode: always)."""
    said, asked = a.heard.lower().strip(" ?."), a.question.lower().strip(" ?.")
    return not a.heard or fuzz.ratio(said, asked) >= 85


def judge(avatar: AvatarConfig, person: str, q: Question, answer: str, start: str = "") -> Answer:
    instructions = shingles((avatar.system_prompt(), *SCAFFOLDING, FACTS_HEADER))
    right = carries(answer, q.right)
    return Answer(
        person,
        q.text,
        q.kind,
        answer,
        right,
        wrong=carries(answer, q.wrong) and not right,
        prompt_text=echoes_scaffolding(answer, instructions)
        or bool(re.search(r"\bmemory\b|use these facts", answer, re.I)),
        prefill=start,
    )


# -- text mode ---------------------------------------------------------------------------


FEW_SHOT = (
    "\n\nExample of using what you remember:\nThey ask: What is my cat called?\n"
    "You know: Their cat is called Tiger.\nYou answer: Your cat is called Tiger! How is he?"
)
"""The few-shot lever: one worked example appended to the system prompt."""

LEVERS: dict[str, tuple[Profile, bool, bool]] = {
    "memory block before the turn (before)": ("capable", False, False),
    "memory block + a few-shot example": ("capable", False, True),
    "memory block + answer prefill": ("capable", True, False),
    "facts in the turn, second person": ("small", False, False),
    "facts in the turn + a few-shot example": ("small", False, True),
    "facts in the turn + answer prefill (shipped)": ("small", True, False),
}


def learn(store: MemoryStore, user_id: str, sentences: tuple[str, ...], name: str | None):
    """What the memory writer does with a person's turns (``MemoryWriter._learn``)."""
    for sentence in sentences:
        for fact in extract_facts(sentence):
            name = fact.value if fact.key == "name" else name
            store.upsert_card(user_id=user_id, text=fact.render(name), scope="user", key=fact.key)
            time.sleep(0.002)  # each card its own "updated" time, as turns would have
    return name


async def ask_text(
    client: httpx.AsyncClient, url: str, model: str, avatar: AvatarConfig, messages, seed: int
) -> str:
    r = await client.post(
        f"{url}/chat/completions",
        json={
            "model": model,
            "messages": messages,
            "temperature": avatar.llm.temperature,
            "top_p": avatar.llm.top_p,
            "max_tokens": 60,
            "seed": seed,
            # As the graph sends the embedded engine (bots.pipeline.build_llm); Ollama has its own.
            **({"repeat_penalty": avatar.llm.repeat_penalty} if model == "local" else {}),
        },
        timeout=120,
    )
    r.raise_for_status()
    return r.json()["choices"][0]["message"]["content"] or ""


async def run_text(
    url: str, model: str, levers: dict[str, tuple[Profile, bool, bool]], samples: int
) -> dict[str, Score]:
    from bots.runtime import LocalModels
    from bots.settings import Settings

    avatar = BUILTIN_AVATARS.load("lumina")
    store = MemoryStore(tempfile.mkdtemp(prefix="recall-"), LocalModels(Settings()).embedder())
    recallers = {}
    for person in PEOPLE:
        uid = person.name.lower()
        name = learn(store, uid, person.told, None)
        learn(store, uid, person.changed, name)
        recallers[person.name] = Recaller(store, user_id=uid, avatar_id="lumina", session_id="x")
    scores = {lever: Score() for lever in levers}
    async with httpx.AsyncClient() as client:
        for lever, (profile, use_prefill, few_shot) in levers.items():
            system = avatar.system_prompt() + (FEW_SHOT if few_shot else "")
            for person in PEOPLE:
                recaller = recallers[person.name]
                for q in person.questions:
                    found = recaller.recall(q.text)
                    prompt = memory_messages(
                        [
                            {"role": "system", "content": system},
                            {"role": "user", "content": q.text},
                        ],
                        found,
                        avatar_name=avatar.name,
                        profile=profile,
                        name=recaller.name,
                        prefill_answers=use_prefill,
                    )
                    for seed in range(samples):
                        reply = await ask_text(client, url, model, avatar, prompt.messages, seed)
                        if prompt.prefill and not reply.lstrip().startswith(prompt.prefill):
                            reply = f"{prompt.prefill} {reply}"  # Ollama: continuation only
                        scores[lever].answers.append(
                            judge(avatar, person.name, q, reply, prompt.prefill)
                        )
            print(f"{lever}: {scores[lever].summary()}", flush=True)
    return scores


# -- spoken mode -------------------------------------------------------------------------


def speak(voice: str, text: str) -> np.ndarray:
    from testkit.speech import espeak_say, piper_say

    kind, _, arg = voice.partition(":")
    return piper_say(text, float(arg)) if kind == "piper" else espeak_say(text, arg)


async def run_spoken(llm_port: int) -> Score:
    from bots.llm_backend import LLMBackend
    from bots.runtime import Runtime
    from bots.session import VoiceSession
    from bots.settings import Settings
    from testkit.harness import ScriptedTransport
    from testkit.net import wait_for

    settings = Settings(llm_backend="embedded", llm_port=llm_port)
    base = Runtime.start(settings)
    store = MemoryStore(tempfile.mkdtemp(prefix="recall-"), base.models.embedder())
    runtime = Runtime(settings, models=base.models, memory=store, patches=base.patches)
    slots = await asyncio.to_thread(runtime.llm.embedded_slots)
    backend = LLMBackend("embedded", settings.embedded_llm_url, "local", slots)
    transcriber = runtime.models.transcriber()
    avatar = BUILTIN_AVATARS.load("lumina")
    score = Score()

    async def call(person: Person, sid: str, lines, questions=()) -> None:
        session = VoiceSession(
            avatar,
            ScriptedTransport,
            runtime,
            backend=backend,
            session_id=sid,
            user_id=person.name.lower(),
            greet=False,
            idle_timeout_secs=None,
        )
        await session.prepare()
        task = asyncio.create_task(session.run())
        await asyncio.sleep(1.5)
        transport = session.transport
        assert isinstance(transport, ScriptedTransport)
        try:
            for item in [*lines, *questions]:
                text = item.text if isinstance(item, Question) else item
                answered = len(session.turns.turns("assistant"))
                asked = len(session.turns.turns("user"))
                timed = len(session.latency.turns)
                heard_from = len(transport.speaker.heard)
                await transport.mic.say(speak(person.voice, text))
                await wait_for(
                    lambda a=answered: session.turns.turns("assistant")[a:], 90, repr(text)
                )
                # The reply is recorded before its last audio has played: speaking now would
                # talk over it (a barge-in), as a person would not.
                await wait_for(lambda: transport.silent_for(1.0), 60, "the reply to end")
                if isinstance(item, Question):
                    said = transcribe_played(transcriber, transport.speaker.heard[heard_from:])
                    start = session.retrieval.prefill if session.retrieval else ""
                    answer = judge(avatar, person.name, item, said, start)
                    answer.heard = " ".join(t.text for t in session.turns.turns("user")[asked:])
                    cards = store.list_cards(person.name.lower(), avatar.id)
                    answer.stored = carries(" ".join(c.text for c in cards), item.right)
                    if len(session.latency.turns) > timed:
                        answer.voice_to_voice_ms = session.latency.turns[timed].total * 1000
                    score.answers.append(answer)
                    print(f"  {person.name}: {text!r} -> {said!r}", flush=True)
        finally:
            await session.worker.cancel()
            await asyncio.wait_for(task, 30)
            await session.finish()

    for person in PEOPLE:
        await call(person, f"{person.name}-1", person.told)
        if person.changed:
            await call(person, f"{person.name}-2", person.changed)
    for person in PEOPLE:
        asked = list(person.questions)
        asked[2:2], asked[6:6] = [OTHER_QUESTIONS[0]], [OTHER_QUESTIONS[1]]
        await call(person, f"{person.name}-3", (), asked)
    await runtime.close()
    return score


def _table(rows: dict[str, dict]) -> str:
    cols = ["direct", "direct, stored and heard right", "indirect", "changed", "wrong fact"]
    cols += ["prompt text", "voice-to-voice p50, memory questions"]
    cols.append("voice-to-voice p50, other questions")
    out = ["| | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for name, summary in rows.items():
        out.append(f"| {name} | " + " | ".join(summary.get(c, "-") for c in cols) + " |")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--text", action="store_true", help="text only (no speech)")
    parser.add_argument("--levers", action="store_true", help="text mode: every lever")
    parser.add_argument("--samples", type=int, default=4, help="text mode: answers per question")
    parser.add_argument(
        "--ollama", default="llama3.2:3b", help="text mode: also this Ollama model ('' for none)"
    )
    args = parser.parse_args()

    from bots.runtime import run as run_on_event_loop

    port = free_port()
    server = llm_server(port)
    server.start()
    rows: dict[str, dict] = {}
    answers: dict[str, list] = {}
    cmd = "python -m bench.recall " + " ".join(sys.argv[1:])
    try:
        if args.text:
            levers = LEVERS if args.levers else {k: v for k, v in LEVERS.items() if "shipped" in k}
            scores = run_on_event_loop(
                run_text(f"http://127.0.0.1:{port}/v1", "local", levers, args.samples)
            )
            for lever, score in scores.items():
                rows[f"SmolLM2-135M (embedded): {lever}"] = score.summary()
                answers[lever] = [asdict(a) for a in score.answers]
            if args.ollama:
                rows.update(_ollama_rows(args.ollama, args.samples, answers, run_on_event_loop))
            name = "recall_text"
        else:
            score = run_on_event_loop(run_spoken(port))
            rows["SmolLM2-135M (embedded), spoken, shipped profile"] = score.summary()
            answers["spoken"] = [asdict(a) for a in score.answers]
            name = "recall"
    finally:
        server.stop()
    OUT.mkdir(exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps({"rows": rows, "answers": answers}, indent=1))
    md = f"# Recall on the avatar's answers\n\n`.venv/bin/{cmd}`\n\n{_table(rows)}\n"
    (OUT / f"{name}.md").write_text(md)
    print(md)


def _ollama_rows(model: str, samples: int, answers: dict, run_on_event_loop) -> dict[str, dict]:
    try:
        httpx.get("http://127.0.0.1:11434/api/tags", timeout=2).raise_for_status()
    except httpx.HTTPError:
        return {f"{model} (Ollama)": {"direct": "skipped: no Ollama running"}}
    levers = {k: v for k, v in LEVERS.items() if k.startswith("memory block before")}
    scores = run_on_event_loop(run_text("http://127.0.0.1:11434/v1", model, levers, samples))
    rows = {}
    for lever, score in scores.items():
        rows[f"{model} (Ollama): {lever.replace('(before)', '(its shipped profile)')}"] = (
            score.summary()
        )
        answers[f"ollama {lever}"] = [asdict(a) for a in score.answers]
    return rows


if __name__ == "__main__":
    main()

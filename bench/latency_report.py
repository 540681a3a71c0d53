"""Statistics, Markdown tables and the concurrency plot of the latency benchmark."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from bench.latency_turns import wer

# (label, key) rows of the ours-vs-peer table; keys are produced by summarize().
ROWS: list[tuple[str, str]] = [
    ("voice-to-voice p50 (client)", "v2v_p50_ms"),
    ("voice-to-voice p95 (client)", "v2v_p95_ms"),
    ("server total, median (turn-latency)", "server_total_ms"),
    ("- turn end detection (turn-latency)", "server_turn_end_ms"),
    ("- STT (turn-latency)", "server_stt_ms"),
    ("- LLM TTFB (turn-latency)", "server_llm_ttfb_ms"),
    ("- TTS TTFB (turn-latency)", "server_tts_ttfb_ms"),
    ("transport = v2v - server total, median", "transport_ms"),
    ("STT TTFB, speech end -> transcript (RTVI metrics)", "metrics_stt_ttfb_ms"),
    ("STT processing (RTVI metrics)", "metrics_stt_processing_ms"),
    ("LLM TTFB (RTVI metrics)", "metrics_llm_ttfb_ms"),
    ("TTS TTFB (RTVI metrics)", "metrics_tts_ttfb_ms"),
    ("user-stopped-speaking arrives after speech end", "event_user_stopped_ms"),
    ("bot-started-speaking arrives after speech end", "event_bot_started_ms"),
    ("first audio after bot-started-speaking", "event_audio_after_bot_started_ms"),
    ("barge-in stop p50", "barge_in_p50_ms"),
    ("barge-in stop p95", "barge_in_p95_ms"),
    ("bot-interrupted arrives after barge-in start, median", "barge_in_event_ms"),
    ("preemptive replies: turns kept / answered again / thrown away", "preemption"),
    ("transcript WER", "wer"),
    ("turns measured / played", "answered"),
    ("errors (turns)", "errors"),
    ("barge-ins measured / failed / skipped", "barge_in_counts"),
]


HOW_MEASURED = """\
How it is measured (all at one aiortc client, wall clock, over real WebRTC/Opus):
- *voice-to-voice*: first received 20 ms of bot audio with RMS > {rms} (int16) after the last
  sample of the user's utterance left the client. The synthesized utterances are trimmed of
  leading and trailing silence first, so the last sample sent is the end of speech. Between
  utterances the received audio is digital zero (max silent RMS seen: ours {ours_silent},
  peer {peer_silent}).
- *server breakdown*: our bot's `turn-latency` RTVI server message (Pipecat's
  UserBotLatencyObserver); the stock peer sends none, so those rows are n/a, as is transport.
- *RTVI metrics*: the TTFB/processing numbers both bots send (`enable_metrics=True`). STT TTFB
  runs from the estimated speech end (VAD stop minus stop_secs) to the final transcript.
- *events*: when `user-stopped-speaking` / `bot-started-speaking` reached the client, after the
  end of the user's speech; "first audio after bot-started-speaking" is the audio path.
- *barge-in stop*: 1.5 s into the answer the client says "{interruption}"; stop = arrival of
  the last voiced bot chunk before the bot-interrupted notice + 0.5 s (queued audio may drain
  after the notice; our bot goes quiet before it), minus the first sample of the
  interruption. Skipped when the bot was already silent for 300 ms when it started.
- *WER*: utterance text vs the final `user-transcription` messages of the turn (jiwer,
  lowercase, no punctuation), over all turns.
- Sequential runs: blocks of {per_call} turns in one session (opened by one unmeasured warm-up
  turn), alternating ours / peer. Concurrency sessions have no warm-up and no barge-in.
"""


def pct(values: list[float], q: float) -> float | None:
    """Percentile of the non-None values, rounded; None when there are none."""
    vals = [v for v in values if v is not None]
    return round(float(np.percentile(vals, q))) if vals else None


def summarize(records: list[dict]) -> dict:
    """Per-system numbers from per-turn records (see latency_turns.TurnRecord)."""
    v2v = [r["v2v_ms"] for r in records if r["v2v_ms"] is not None]
    out: dict = {
        "turns": len(records),
        "answered": f"{len(v2v)} / {len(records)}",
        "errors": sum(1 for r in records if r["error"]),
        "error_kinds": dict(Counter(r["error"] for r in records if r["error"])),
        "v2v_p50_ms": pct(v2v, 50),
        "v2v_p95_ms": pct(v2v, 95),
        "transport_ms": pct([r["transport_ms"] for r in records], 50),
    }
    for key in ("total", "turn_end", "stt", "llm_ttfb", "tts_ttfb"):
        out[f"server_{key}_ms"] = pct([(r["server"] or {}).get(key) for r in records], 50)
    for key in ("stt_ttfb", "stt_processing", "llm_ttfb", "tts_ttfb"):
        out[f"metrics_{key}_ms"] = pct([r["metrics"].get(key) for r in records], 50)
    for key in ("user_stopped", "bot_started", "audio_after_bot_started"):
        out[f"event_{key}_ms"] = pct([r["events"].get(key) for r in records], 50)
    out.update(summarize_barge_in([r["barge_in"] for r in records if r["barge_in"]]))
    out.update(summarize_preemption([(r["server"] or {}).get("preemption") for r in records]))
    heard = [r for r in records if r["error"] != "bot never went quiet before the turn"]
    w = wer([r["text"] for r in heard], [r["heard_text"] for r in heard])
    out["wer"] = round(w, 3) if w is not None else None
    return out


def summarize_preemption(turns: list[dict | None]) -> dict:
    """How the answered turns' replies were made (our ``turn-latency`` message's counts).

    Kept: the preemptive reply started before the turn was confirmed is the one played.
    Answered again: the turn ended on other words. Thrown away: replies started during a
    pause the person then spoke on after.
    """
    known = [t for t in turns if t]
    if not known:
        return {}
    kept = sum(t["last"] == "kept" for t in known)
    again = sum(t["last"] == "regenerated" for t in known)
    dropped = sum(t["last_withdrawn"] for t in known)
    return {
        "preemption": f"{kept} / {again} / {dropped} of {len(known)} turns",
        "preempt_kept_share": round(kept / len(known), 2),
    }


def summarize_barge_in(tries: list[dict]) -> dict:
    """Barge-in stop times (ms) and how many were measured, failed and skipped."""
    stops = [b["stop_ms"] for b in tries if b.get("stop_ms") is not None]
    failed = [b for b in tries if "error" in b]
    skipped = [b for b in tries if "skipped" in b]
    return {
        "barge_in_p50_ms": pct(stops, 50),
        "barge_in_p95_ms": pct(stops, 95),
        "barge_in_event_ms": pct([b.get("interrupted_event_ms") for b in tries], 50),
        "barge_in_counts": f"{len(stops)} / {len(failed)} / {len(skipped)}",
        "barge_in_errors": dict(Counter(b["error"] for b in failed)),
    }


def ratio(ours, peer) -> float | None:
    """ours / peer for two numbers, else None."""
    if isinstance(ours, int | float) and isinstance(peer, int | float) and peer:
        return round(ours / peer, 2)
    return None


def _cell(value, key: str = "_ms") -> str:
    if value is None:
        return "n/a"
    if key.endswith("_ms"):
        return f"{value} ms"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def comparison_table(ours: dict, peer: dict | None) -> str:
    """Markdown: one row per metric, ours vs the stock Pipecat peer, and their ratio."""
    lines = ["| metric | ours | stock Pipecat peer | ours / peer |", "|---|---|---|---|"]
    for label, key in ROWS:
        o, p = ours.get(key), (peer or {}).get(key)
        r = ratio(o, p)
        r_cell = f"{r:.2f}" if r is not None else "n/a"
        lines.append(f"| {label} | {_cell(o, key)} | {_cell(p, key)} | {r_cell} |")
    return "\n".join(lines)


def paused_table(systems: dict[str, list[dict]]) -> str:
    """Markdown: sentences said with a pause in the middle, per system.

    "Answered half" counts turns where bot audio arrived during the pause (the turn's error
    "bot talked while the user was speaking"); v2v is from the end of the whole sentence.
    """
    lines = [
        "| system | turns | answered half | v2v p50 | transcript WER | other errors |",
        "|---|---|---|---|---|---|",
    ]
    early = "bot talked while the user was speaking"
    for name, records in systems.items():
        half = sum(r["error"] == early for r in records)
        other = sum(bool(r["error"]) and r["error"] != early for r in records)
        v2v = pct([r["v2v_ms"] for r in records], 50)
        w = wer([r["text"] for r in records], [r["heard_text"] for r in records])
        lines.append(
            f"| {name} | {len(records)} | {half} | {_cell(v2v)} "
            f"| {_cell(round(w, 3) if w is not None else None, 'wer')} | {other} |"
        )
    return "\n".join(lines)


def concurrency_table(rows: list[dict]) -> str:
    """Markdown: voice-to-voice and memory vs simultaneous sessions."""
    lines = [
        "| sessions | turns answered / played | errors | v2v p50 | v2v p95 | peak RSS |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['sessions']} | {row['answered']} / {row['turns']} | {row['errors']} "
            f"| {_cell(row['v2v_p50_ms'])} | {_cell(row['v2v_p95_ms'])} "
            f"| {row['peak_rss_mb']} MB |"
        )
    return "\n".join(lines)


def plot_concurrency(systems: dict[str, list[dict]], path: Path) -> None:
    """p50/p95 voice-to-voice vs simultaneous sessions, one pair of lines per system."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, rows in systems.items():
        n = [r["sessions"] for r in rows]
        for key, style in (("v2v_p50_ms", "-o"), ("v2v_p95_ms", "--s")):
            ys = [r[key] / 1000 if r[key] is not None else float("nan") for r in rows]
            ax.plot(n, ys, style, label=f"{name} {key[4:7]}")
        for r in rows:
            if r["errors"]:
                y = (r["v2v_p95_ms"] or 0) / 1000
                ax.annotate(f"{r['errors']} err", (r["sessions"], y), textcoords="offset points",
                            xytext=(4, 6), fontsize=8)  # fmt: skip
    sessions = sorted({r["sessions"] for rows in systems.values() for r in rows})
    ax.set_xscale("log", base=2)
    ax.set_xticks(sessions, [str(x) for x in sessions])
    ax.set_xlabel("simultaneous sessions (one bot process)")
    ax.set_ylabel("voice-to-voice latency at the client (s)")
    ax.set_title("Voice-to-voice latency vs concurrent sessions")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

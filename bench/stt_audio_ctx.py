"""whisper.cpp tiny.en: default 30 s encoder window vs ``audio_ctx`` sized to the clip.

    .venv/bin/python -m bench.stt_audio_ctx [--runs 5]

Writes bench/results/stt_audio_ctx.{json,md}. Each utterance is transcribed with 1 s of
leading silence and 0.4 s trailing (as the segmenter hands it over), through the product's
own ``SharedWhisper`` path (trim + sized context) and through the default settings.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import jiwer
import numpy as np

from bench.utterances import UTTERANCES, synthesize
from bots.models import whisper_ggml
from processors.whisper_stt import SharedWhisper

OUT = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    whisper = SharedWhisper(whisper_ggml("tiny.en"), n_threads=2)
    norm = jiwer.Compose([jiwer.ToLowerCase(), jiwer.RemovePunctuation(), jiwer.Strip(),
                          jiwer.ReduceToListOfListOfWords()])  # fmt: skip
    rows = {"sized": {"t": [], "hyp": []}, "default": {"t": [], "hyp": []}}
    refs = []
    for text, engine, opts in UTTERANCES:
        pcm = synthesize(text, engine, opts)
        pad = np.concatenate([np.zeros(16000, np.int16), pcm, np.zeros(6400, np.int16)])
        audio = pad.astype(np.float32) / 32768
        refs.append(text)
        for mode in rows:
            times = []
            for _ in range(args.runs):
                t = time.perf_counter()
                if mode == "sized":
                    hyp = whisper.transcribe(audio)
                else:
                    with whisper._lock:
                        hyp = whisper._run(audio, 1500)
                times.append(time.perf_counter() - t)
            rows[mode]["t"].extend(times)
            rows[mode]["hyp"].append(hyp)
    result: dict = {"machine": f"{platform.machine()}, 2 threads", "runs": args.runs}
    for mode, r in rows.items():
        t = np.array(r["t"]) * 1000
        wer = jiwer.wer(refs, r["hyp"], reference_transform=norm, hypothesis_transform=norm)
        result[mode] = {
            "p50_ms": round(float(np.median(t))),
            "p95_ms": round(float(np.percentile(t, 95))),
            "wer": round(wer, 3),
        }
    result["speedup_p50"] = round(result["default"]["p50_ms"] / result["sized"]["p50_ms"], 2)
    OUT.mkdir(exist_ok=True)
    (OUT / "stt_audio_ctx.json").write_text(json.dumps(result, indent=2))
    lines = ["| whisper.cpp tiny.en | p50 | p95 | WER |", "|---|---|---|---|"]
    for m in ("default", "sized"):
        r = result[m]
        lines.append(f"| {m} | {r['p50_ms']} ms | {r['p95_ms']} ms | {r['wer']} |")
    md = "\n".join(lines) + f"\n\nspeed-up (p50): {result['speedup_p50']}x\n"
    (OUT / "stt_audio_ctx.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()

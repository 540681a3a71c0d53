// Lip sync on the page's clock: the server's face cues, scheduled against when their audio
// actually plays here.
//
// The server sends a "face" message as a chunk's audio starts going out on the wire
// (processors/face_cues.py): its visemes and expressions in ms from that audio's start.
// The audio then spends a while in the receiver's jitter buffer and the sound card, so the
// chunk is heard some time after the message arrives. Two clocks place it:
//
// * a first guess from the receiver's stats: jitterBufferDelay / jitterBufferEmittedCount
//   (the average time a sample waited, over the last second) plus the output's latency;
// * then the sound itself. Chrome exposes no playout position for a WebRTC track
//   (estimatedPlayoutTimestamp is empty without RTCP from a clock-synced sender), and the jitter
//   buffer stretches and shrinks under load (750 ms on a busy 2-core machine, 60 ms idle), so
//   when the page's own analyser hears sound start after a pause, the chunk expected to
//   open the mouth near then is moved to open it exactly then, with the chunks after it.
//   The analyser listens to the same stream the <audio> element plays.

// VRM mouth weights per viseme class; the same table as processors/visemes.py VRM_MOUTH.
export const VRM_MOUTH = {
  rest: {},
  MBP: {},
  FV: { ih: 0.2 },
  TH: { ih: 0.3, aa: 0.1 },
  L: { ih: 0.3, aa: 0.2 },
  S: { ih: 0.35 },
  CH: { ou: 0.5 },
  R: { ou: 0.35, aa: 0.1 },
  KG: { aa: 0.4 },
  AA: { aa: 1.0 },
  E: { ee: 0.8, aa: 0.2 },
  I: { ih: 0.9 },
  O: { oh: 1.0 },
  U: { ou: 1.0 },
};

// Our expressions as VRM's (VRM has no "thinking": a calm, slightly relaxed face).
export const VRM_EXPRESSION = {
  neutral: "neutral",
  happy: "happy",
  sad: "sad",
  surprised: "surprised",
  angry: "angry",
  thinking: "relaxed",
};

const MAX_CHUNKS = 64; // a reply's worth; older ones are long over

/** The cues of the chunks being played, on the page's clock (performance.now()). */
export class CueSchedule {
  constructor() {
    this.chunks = []; // {start, end, visemes: [[ms, name]], i}
    this.expressions = []; // {at, name, intensity}, by time
  }

  /** A "face" message that arrived now, its audio heard `delayMs` from now. */
  add(message, now, delayMs) {
    const start = now + delayMs;
    const visemes = Array.isArray(message.visemes) ? message.visemes : [];
    // Chunks play back to back: one that arrives while the last still plays starts after it.
    const last = this.chunks.at(-1);
    const begins = last && last.end > start && last.end - start < 120 ? last.end : start;
    if (visemes.length) {
      const open = visemes.find(([, name]) => name !== "rest");
      this.chunks.push({
        start: begins,
        end: begins + (message.duration_ms || 0),
        visemes,
        i: 0,
        opensAt: open ? open[0] : null, // ms from the start: where sound begins
        anchored: false,
        // After a pause the mouth waits for the sound (up to the window's end) rather than
        // opening on the guess; chunks that follow on without a pause keep the chain.
        waits: begins === start && !(last && last.end > start - 50),
      });
      if (this.chunks.length > MAX_CHUNKS) this.chunks.shift();
    }
    for (const [ms, name, intensity] of message.expressions ?? []) {
      this.expressions.push({ at: begins + ms, name, intensity: intensity ?? 1 });
    }
    this.expressions.sort((a, b) => a.at - b.at);
  }

  /**
   * The analyser heard sound start at `now` after a pause: the chunk whose sound was expected
   * near then (from 400 ms before to 700 ms after) starts so that its first open shape is now;
   * the chunks and feelings after it move with it.
   */
  soundStarted(now) {
    const chunk = this.chunks.find(
      (c) => !c.anchored && c.opensAt !== null && Math.abs(c.start + c.opensAt - now - 150) <= 550,
    );
    if (!chunk) return;
    const shift = now - (chunk.start + chunk.opensAt);
    for (const c of this.chunks) {
      if (c.start >= chunk.start) {
        c.start += shift;
        c.end += shift;
        c.i = 0;
      }
    }
    for (const e of this.expressions) if (e.at >= chunk.start - shift) e.at += shift;
    chunk.anchored = true;
  }

  /** The viseme to show at `now`; null when no cued audio is playing (use the level). */
  visemeAt(now) {
    while (this.chunks.length && this.chunks[0].end <= now) this.chunks.shift();
    const chunk = this.chunks[0];
    if (!chunk || chunk.start > now) return null;
    if (chunk.waits && !chunk.anchored && now < chunk.start + chunk.opensAt + 700) return "rest";
    const t = now - chunk.start;
    const v = chunk.visemes;
    if (chunk.i >= v.length || v[chunk.i][0] > t) chunk.i = 0; // (clock went back: rescan)
    while (chunk.i + 1 < v.length && v[chunk.i + 1][0] <= t) chunk.i++;
    return v[chunk.i][1];
  }

  /** Expressions whose word has been reached by `now`, in order (each given once). */
  due(now) {
    let n = 0;
    while (n < this.expressions.length && this.expressions[n].at <= now) n++;
    return n ? this.expressions.splice(0, n) : [];
  }

  /** Whether cued audio is playing or still to come. */
  pending(now) {
    return this.chunks.some((c) => c.end > now) || this.expressions.length > 0;
  }

  /** The audio stopped at `at` (the server said so): nothing after it will be heard. */
  cutAt(at) {
    this.chunks = this.chunks.filter((c) => c.start < at);
    for (const c of this.chunks) c.end = Math.min(c.end, at);
    this.expressions = this.expressions.filter((e) => e.at < at);
  }

  clear() {
    this.chunks = [];
    this.expressions = [];
  }
}

/**
 * How long the bot's audio takes from arriving to being heard, from the receiver's stats.
 * Polled once a second (getStats is not for every frame).
 */
export class PlayoutDelay {
  constructor() {
    this.jitterMs = 60; // until measured: a typical loopback jitter buffer
    this.outputMs = 0;
    this.last = null;
    this.timer = 0;
  }

  get ms() {
    return this.jitterMs + this.outputMs;
  }

  /** Follow `pc`'s audio receiver; `audioContext` (optional) gives the output latency. */
  start(pc, audioContext) {
    this.stop();
    const poll = async () => {
      try {
        const stats = await pc.getStats();
        stats.forEach((s) => {
          if (s.type !== "inbound-rtp" || s.kind !== "audio") return;
          const now = { delay: s.jitterBufferDelay ?? 0, count: s.jitterBufferEmittedCount ?? 0 };
          const d = this.last && now.count - this.last.count;
          if (d > 0) this.jitterMs = ((now.delay - this.last.delay) / d) * 1000;
          this.last = now;
        });
        const ctx = audioContext;
        this.outputMs = ctx ? ((ctx.outputLatency || 0) + (ctx.baseLatency || 0)) * 1000 : 0;
      } catch {
        // A closed connection: keep the last estimate.
      }
    };
    poll();
    this.timer = setInterval(poll, 1000);
  }

  stop() {
    clearInterval(this.timer);
    this.last = null;
  }
}

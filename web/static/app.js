// The talk page: picks the avatar, runs one Call at a time, and turns RTVI messages into a
// live transcript. Message shapes are Pipecat's (pipecat/processors/frameworks/rtvi/).
import { Call, CallError } from "./call.js";
import { createFace } from "./face.js";
import { CueSchedule, PlayoutDelay, VRM_EXPRESSION, VRM_MOUTH } from "./lipsync.js";
import { getJSON, hashHue, initialsOf, showAccount, withCode } from "./ui.js";

const $ = (id) => document.getElementById(id);
const ui = {
  root: document.documentElement,
  portrait: $("portrait"),
  initials: $("initials"),
  name: $("avatar-name"),
  blurb: $("avatar-blurb"),
  activity: $("activity"),
  banner: $("banner"),
  talk: $("talk"),
  talkLabel: $("talk-label"),
  conn: $("conn"),
  status: $("status"),
  transcript: $("transcript"),
  empty: $("empty"),
  audio: $("bot-audio"),
  others: $("others"),
  details: $("details-list"),
  account: $("account"),
  memoryNav: $("memory-nav"),
  mute: $("mute"),
  interrupt: $("interrupt"),
  mode: $("mode"),
  ptt: $("ptt"),
  micLevel: $("mic-level"),
  faceHost: $("face-host"),
  vrmCanvas: $("vrm"),
};

let avatar = null;
let call = null;
let meter = null; // { ctx, read(), stop() } while a call plays audio
let micMeter = null; // the same for the microphone
// The face: drawn (face.js) or the person's VRM; both driven from the one animation loop.
let face = null;
let vrm = null;
const cues = new CueSchedule();
const playout = new PlayoutDelay();
let cuedCall = false; // this call's voice sends cues: no level-driven mouth
let lastCueAt = -Infinity; // when the face last had something to say (for the resting face)
const RESTING_AFTER_MS = 2500;
// For tests and the curious: when sound started in the page's analyser, and when the mouth
// first opened for it (performance.now() ms).
const onsets = { audio: [], mouth: [] };
// ...and, per frame while in a call, [time, the analyser's RMS, how far speech opens the mouth].
const trace = [];
const TRACE_MAX = 12000; // about three minutes at 60 frames a second
globalThis.__talk = {
  onsets,
  trace,
  cues,
  playout,
  get face() {
    return face;
  },
  get vrm() {
    return vrm;
  },
};
let muted = false;
let holding = false; // push-to-talk held down

// Conversation state. Bubbles stay "open" until the other side takes the turn, so text that
// arrives late (a final transcript after user-stopped-speaking, the last word of a reply)
// lands in the right bubble.
let userBubble = null;
let botBubble = null;
let lastBotBubble = null;
let botSpeaking = false;
let llmRunning = false; // the reply is still being written, even if the bot paused speaking
// Pipecat sends the same words under an old and a new name (user-transcription and
// user-input; bot-tts-text and bot-output). We use the new one and fall back to the old one
// only if the server never sends the new one (older Pipecat, or the observer turned it off).
let seenUserInput = false;
let seenBotOutput = false;

// ---------- start-up ----------

async function init() {
  setStatus("Loading…");
  let avatars;
  try {
    await showAccount(ui.account);
    avatars = (await getJSON("/api/avatars")).filter((a) => !a.error); // broken files: lobby
  } catch (e) {
    return setStatus(`Could not load the avatars: ${e.message}`, "error");
  }
  if (!avatars.length) return setStatus("This server offers no avatars.", "error");

  const wanted = new URLSearchParams(location.search).get("avatar");
  avatar = avatars.find((a) => a.id === wanted) ?? avatars[0];
  showAvatar(avatar, avatars);
  if (wanted && wanted !== avatar.id) {
    setStatus(`There is no avatar “${wanted}” here; talking to ${avatar.name} instead.`, "warn");
  } else {
    setStatus(`Press Talk to start a conversation with ${avatar.name}.`);
  }
  ui.talk.disabled = false;
  ui.talk.addEventListener("click", () => (call ? hangUp() : talk()));
  ui.memoryNav.href = `/memory?avatar=${encodeURIComponent(avatar.id)}`;
  setUpMicControls();
  // Closing the tab mid-call: close the peer connection so the server ends the session now,
  // instead of noticing the silence ~30 s later.
  addEventListener("pagehide", () => call?.hangUp());
  checkHealth();
}

function showAvatar(a, all) {
  document.title = `${a.name} · Local avatars`;
  showFace(a);
  ui.name.textContent = a.name;
  ui.blurb.textContent = a.blurb;
  ui.initials.textContent = initialsOf(a.name);
  ui.portrait.setAttribute("aria-label", `${a.name}'s portrait`);
  // Same avatar, same colours, on every visit.
  // On the root element: the colours derived from --hue are defined there.
  ui.root.style.setProperty("--hue", String(hashHue(a.id)));
  ui.empty.textContent = `Press Talk and say hello. ${a.name} answers out loud, and the conversation appears here.`;
  for (const other of all.filter((o) => o.id !== a.id)) {
    const link = document.createElement("a");
    link.href = `/talk?avatar=${encodeURIComponent(other.id)}`;
    link.textContent = other.name;
    ui.others.append(link);
  }
  ui.others.hidden = all.length < 2;
}

// ---------- the face ----------

function showFace(a) {
  if (!a.face) return; // an older server: the initials stay
  face = createFace(ui.faceHost, a.face, { label: `${a.name}'s face` });
  ui.portrait.classList.add("has-face");
  if (a.face.vrm && a.vrm) showVrm(a);
  requestAnimationFrame(animate);
}

/** The person's own 3D model; the drawn face stays if it can't be shown (no WebGL...). */
async function showVrm(a) {
  try {
    const { loadVrm } = await import("./vrm_view.js");
    vrm = await loadVrm(ui.vrmCanvas, `/api/avatars/${encodeURIComponent(a.id)}/vrm`);
    ui.vrmCanvas.hidden = false;
    ui.portrait.classList.add("has-vrm");
    vrm.setExpression(VRM_EXPRESSION[a.face.resting] ?? "neutral", 0.6);
  } catch (e) {
    addDetail("3D model", `not shown: ${e.message}`);
  }
}

let lastFrame = performance.now();
let nextBlink = performance.now() + 2500;
let mouthOpen = false;
let quietSince = 0;
let soundOn = false;
let heardAt = 0; // the last frame the analyser heard anything
const QUIET_CLOSES_MS = 60;

/** The page's one animation loop: levels, lip sync, expressions, idle life. No layout. */
function animate(now) {
  const dt = Math.min(0.1, (now - lastFrame) / 1000);
  lastFrame = now;
  const level = meter ? meter.read() : 0;
  ui.portrait.style.setProperty("--level", level.toFixed(3));
  if (micMeter) ui.micLevel.value = micMeter.read();
  noteSound(now, meter ? meter.raw : 0);

  let viseme = cues.visemeAt(now);
  // The sound stopped (the analyser has heard nothing for a moment): so does the mouth, even
  // if the cues say the sentence's last consonant is still being shaped.
  if (viseme && viseme !== "rest" && meter && now - heardAt > QUIET_CLOSES_MS) viseme = "rest";
  for (const e of cues.due(now)) showExpression(e.name, e.intensity);
  if (viseme || cues.pending(now)) lastCueAt = now;
  else if (face && now - lastCueAt > RESTING_AFTER_MS && lastCueAt > 0) {
    lastCueAt = 0; // back to the resting face once the avatar has been quiet a while
    showExpression(face.resting, 1);
  }
  if (face) {
    if (viseme) face.setViseme(viseme);
    else if (cuedCall) face.setViseme("rest"); // between cued chunks: nothing is said
    else face.setLevel(meter && botSpeaking ? level : 0); // no cues (another TTS): the level
    face.update(now);
  }
  if (vrm) {
    vrm.setVisemes(viseme ? VRM_MOUTH[viseme] ?? {} : { aa: meter && botSpeaking ? level * 0.8 : 0 });
    if (now > nextBlink) {
      const t = now - nextBlink;
      vrm.setBlink(t < 150 ? Math.sin((t / 150) * Math.PI) : 0);
      if (t >= 150) nextBlink = now + 2000 + Math.random() * 4000;
    }
    vrm.update(dt);
  }
  if (meter && face) {
    trace.push([now, meter.raw, face.speechOpenness(now)]);
    if (trace.length > TRACE_MAX) trace.splice(0, trace.length - TRACE_MAX);
  }
  const open = Boolean(viseme && viseme !== "rest");
  if (open && !mouthOpen) onsets.mouth.push(now);
  mouthOpen = open;
  if (onsets.mouth.length > 200) onsets.mouth.shift();
  requestAnimationFrame(animate);
}

/** Sound starts after at least 150 ms of quiet (the analyser's own view of the audio). */
function noteSound(now, raw) {
  if (raw > 0.01) heardAt = now;
  if (raw > 0.03) {
    if (!soundOn && now - quietSince > 150) {
      onsets.audio.push(now);
      cues.soundStarted(now);
    }
    soundOn = true;
  } else if (raw < 0.01) {
    if (soundOn) quietSince = now;
    soundOn = false;
  }
  if (onsets.audio.length > 200) onsets.audio.shift();
}

function showExpression(name, intensity) {
  face?.setExpression(name, intensity);
  if (vrm) {
    for (const e of new Set(Object.values(VRM_EXPRESSION))) vrm.setExpression(e, 0);
    vrm.setExpression(VRM_EXPRESSION[name] ?? "neutral", intensity);
  }
}

function setGaze(mode) {
  face?.setGaze(mode);
  vrm?.lookAt(mode === "away" ? "away" : "user");
}

/** The mouth closes now: the audio was cut off or has ended. */
function closeMouth() {
  cues.clear();
  face?.setViseme("rest");
  vrm?.setVisemes({});
}

async function checkHealth() {
  try {
    const h = await getJSON("/api/health");
    addDetail("LLM", h.llm?.ok ? `${h.llm.backend}${h.llm.model ? ` (${h.llm.model})` : ""}` : "down");
    const down = ["llm", "stt", "tts", "memory"].find((part) => h[part] && !h[part].ok);
    if (down) showBanner(h[down].fix || "The server reports a problem: the avatar may not answer.");
  } catch (e) {
    showBanner(`Could not check the server's health: ${e.message}`);
  }
}

// ---------- the call ----------

async function talk() {
  const thisCall = new Call({
    avatar: avatar.id,
    onState: showConnection,
    onMessage: handleRTVI,
    onRemoteStream: playBot,
    onEnded: (reason) => endCall(reason, "warn"),
  });
  call = thisCall;
  setTalkButton(true);
  setStatus("Asking for the microphone…");
  try {
    await thisCall.start();
    if (call !== thisCall) return;
    applyMic();
    micMeter?.stop();
    micMeter = levelMeter(thisCall.mic);
    setCallTools(true);
    if (call === thisCall && thisCall.pc?.connectionState !== "connected") {
      setStatus(`Connecting to ${avatar.name}…`);
    }
  } catch (e) {
    if (call !== thisCall) return; // hung up meanwhile: that was the point
    const text = e instanceof CallError ? e.message : `Could not start the call: ${e.message || e}`;
    endCall(text, "error");
  }
}

function hangUp() {
  endCall("Call ended. Press Talk to start again.");
}

function endCall(text, kind) {
  const ending = call;
  call = null;
  ending?.hangUp();
  meter?.stop();
  meter = null;
  micMeter?.stop();
  micMeter = null;
  playout.stop();
  closeMouth();
  cuedCall = false;
  setGaze("idle");
  setCallTools(false);
  ui.audio.srcObject = null;
  markInterrupted(); // hanging up on a reply cuts it off too
  botSpeaking = false;
  llmRunning = false;
  closeBubbles();
  lastBotBubble = null;
  if (ui.transcript.querySelector(".msg")) addNote(`Call ended · ${timeNow()}`);
  setActivity("");
  setTalkButton(false);
  setStatus(text, kind);
}

function showConnection(state) {
  const label = { new: "connecting", checking: "connecting" }[state] ?? state;
  ui.conn.textContent = label;
  ui.conn.dataset.state = label;
  if (state === "connected") setStatus(`Connected. Say something to ${avatar.name}.`, "ok");
  if (state === "disconnected" && call) setStatus("Connection lost; trying to recover…", "warn");
}

/** Play the bot; its level drives the glow (and the mouth when no cues come). */
function playBot(stream) {
  // Chrome only feeds a remote WebRTC stream into WebAudio while a media element also plays
  // it, so the <audio> element does the playing and the analyser only listens.
  ui.audio.srcObject = stream;
  ui.audio.play().catch(() => {});
  meter?.stop();
  meter = levelMeter(stream);
  if (call?.pc) playout.start(call.pc, meter.ctx);
}

/** A stream's loudness, read by the animation loop (`read()`: smoothed 0..1; `raw`). */
function levelMeter(stream) {
  const ctx = new AudioContext();
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 512;
  ctx.createMediaStreamSource(stream).connect(analyser); // not to ctx.destination: no echo
  ctx.resume(); // created after the Talk click, so allowed; Safari still starts it suspended
  const samples = new Float32Array(analyser.fftSize);
  let smooth = 0;
  const m = {
    ctx,
    raw: 0,
    read() {
      analyser.getFloatTimeDomainData(samples);
      let sum = 0;
      for (const s of samples) sum += s * s;
      m.raw = Math.sqrt(sum / samples.length);
      // RMS of speech sits around 0.02–0.2; scale so normal speech fills the glow, and ease
      // down slowly so the glow breathes instead of flickering between syllables.
      const level = Math.min(1, m.raw * 6);
      smooth = level > smooth ? level : smooth * 0.9 + level * 0.1;
      return smooth;
    },
    stop() {
      ctx.close();
    },
  };
  return m;
}

// ---------- mute, push-to-talk, interrupt ----------

function setUpMicControls() {
  ui.mute.addEventListener("click", () => {
    muted = !muted;
    ui.mute.setAttribute("aria-pressed", String(muted));
    ui.mute.textContent = muted ? "Unmute" : "Mute";
    applyMic();
  });
  ui.mode.addEventListener("change", () => {
    ui.ptt.hidden = ui.mode.value !== "push-to-talk";
    applyMic();
  });
  const hold = (down) => {
    holding = down;
    ui.ptt.classList.toggle("held", down);
    applyMic();
  };
  ui.ptt.addEventListener("pointerdown", () => hold(true));
  for (const ev of ["pointerup", "pointerleave", "pointercancel"]) {
    ui.ptt.addEventListener(ev, () => holding && hold(false));
  }
  addEventListener("keydown", (e) => {
    if (e.code === "Space" && !e.repeat && ui.mode.value === "push-to-talk" && call && !isTyping(e)) {
      e.preventDefault();
      hold(true);
    }
  });
  addEventListener("keyup", (e) => e.code === "Space" && holding && hold(false));
  ui.interrupt.addEventListener("click", () => {
    call?.interrupt();
    closeMouth();
    markInterrupted();
  });
}

const isTyping = (e) => ["INPUT", "SELECT", "TEXTAREA"].includes(e.target?.tagName);

/** The mic sends audio when not muted and, in push-to-talk, only while held. */
function applyMic() {
  const pushToTalk = ui.mode.value === "push-to-talk";
  call?.setMicEnabled(!muted && (!pushToTalk || holding));
}

function setCallTools(inCall) {
  for (const b of [ui.mute, ui.interrupt, ui.ptt]) b.disabled = !inCall;
  if (!inCall) ui.micLevel.value = 0;
}

// ---------- RTVI messages ----------

function handleRTVI({ type, data = {} }) {
  switch (type) {
    case "bot-ready":
      addDetail("RTVI", `v${data.version}`);
      break;
    case "user-started-speaking":
      setActivity("listening");
      setGaze("user");
      ensureUserBubble();
      break;
    case "user-stopped-speaking":
      // Words were heard, so a reply is coming; a cough gets none.
      setActivity(botSpeaking ? "speaking" : userBubble?.finalText ? "thinking" : "");
      if (!botSpeaking && userBubble?.finalText) setGaze("away"); // thinking of an answer
      break;
    case "user-input": // v2.2: transcriptions (interim too), chat, backchannels
      seenUserInput = true;
      if (data.input_type !== "backchannel") showUserText(data.text, data.final);
      break;
    case "user-transcription": // deprecated twin of user-input
      if (!seenUserInput) showUserText(data.text, data.final);
      break;
    case "bot-llm-started":
      llmRunning = true;
      if (!botSpeaking) ensureBotBubble();
      break;
    case "bot-llm-stopped":
      llmRunning = false;
      // Written after its last sentence was spoken: nothing more is coming.
      if (!botSpeaking && !cues.pending(performance.now()) && ui.portrait.dataset.activity === "thinking") {
        setActivity("");
      }
      break;
    case "bot-started-speaking":
      botSpeaking = true;
      setActivity("speaking");
      setGaze("user");
      ensureBotBubble();
      break;
    case "bot-stopped-speaking":
      // Also sent between sentences when the next one is not synthesized yet: the reply
      // goes on in the same bubble, and the portrait shows it is still thinking.
      botSpeaking = false;
      setActivity(llmRunning ? "thinking" : "");
      // The server stopped sending; what is still in the jitter buffer plays out first.
      cues.cutAt(performance.now() + playout.ms);
      dropUnspokenSegments();
      break;
    case "bot-output":
      seenBotOutput = true;
      showBotOutput(data);
      break;
    case "bot-tts-text": // deprecated, word by word; only when bot-output never comes
      if (!seenBotOutput) appendBotWords(data.text);
      break;
    case "bot-interrupted":
      closeMouth();
      markInterrupted();
      break;
    case "server-message":
      if (data?.type === "turn-latency") showLatency(data);
      // A chunk's lip sync and feelings, sent as its audio starts playing on the server.
      if (data?.type === "face") {
        cuedCall = true;
        cues.add(data, performance.now(), playout.ms);
      }
      // The server ends the call between turns: sign-in expired, signed out, forgotten.
      if (data?.type === "call-ended") endCall(data.reason, "warn");
      // A part failed mid-call and the avatar could not say so (its voice is the part).
      if (data?.type === "error") {
        setStatus(data.message, "warn");
        addNote(data.message);
      }
      break;
    case "metrics":
      showMetrics(data);
      break;
    case "error":
      setStatus(`${avatar.name} hit an error: ${data.error}`, "error");
      if (data.fatal) endCall(`The session stopped: ${data.error}`, "error");
      break;
    case "error-response": // a reply to one of our messages, e.g. a version mismatch
      setStatus(`The server says: ${data.error}`, "warn");
      break;
  }
}

function showUserText(text, final) {
  if (!text) return;
  const b = ensureUserBubble();
  if (final) {
    b.finalText = `${b.finalText} ${text}`.trim();
    b.final.textContent = b.finalText;
    b.interim.textContent = "";
  } else {
    // Interim results replace each other; shown greyed after the settled words.
    b.interim.textContent = (b.finalText ? " " : "") + text;
  }
  b.el.classList.remove("pending");
  scrollTranscript();
}

/**
 * bot-output (protocol 2.x) describes one spoken segment (a sentence) at a time:
 * "new" when queued (nothing heard yet), "in-progress" with accumulated_text as each word
 * plays, "completed" when it is all out. We show only what has been heard, one span per
 * segment, so an interrupted reply shows exactly the words the person heard.
 */
function showBotOutput(d) {
  const b = ensureBotBubble();
  const heard = !d.will_be_spoken
    ? d.text
    : d.spoken_status === "completed"
      ? d.text
      : (d.spoken_progress?.accumulated_text ?? "");
  const key = d.segment_id ?? `seg${b.segments.size}`;
  let seg = b.segments.get(key);
  if (!seg) {
    seg = document.createElement("span");
    seg.className = "seg";
    b.text.append(seg);
    b.segments.set(key, seg);
  }
  seg.dataset.status = d.spoken_status ?? "completed";
  if (heard) {
    seg.textContent = ` ${heard.trim()}`; // the space between sentences; collapsed at line start
    b.el.classList.remove("pending");
  }
  scrollTranscript();
}

function appendBotWords(text) {
  const b = ensureBotBubble();
  b.text.append(document.createTextNode(` ${text}`));
  b.el.classList.remove("pending");
  scrollTranscript();
}

function markInterrupted() {
  // Pipecat interrupts at every user turn start, even when the bot is silent. A reply was
  // cut off only if a sentence of it was still unheard, or the LLM was still writing it
  // (the next sentence will never come, even if the bot was between two sentences).
  const b = lastBotBubble;
  if (!b) return;
  const unfinished = [...b.segments.values()].some((s) => s.dataset.status !== "completed");
  if (!unfinished && !llmRunning) return;
  b.el.classList.add("interrupted");
  b.el.classList.remove("pending");
  if (!b.el.querySelector(".tag")) {
    const tag = document.createElement("span");
    tag.className = "tag";
    tag.textContent = "interrupted";
    b.el.querySelector(".bubble").append(tag);
  }
}

/** A sentence announced ("new") but never spoken when the bot goes quiet will not be: a
 * reply the LLM finished writing after an interruption. Forget it, so it is not shown and
 * does not make the next interruption look like it cut this reply. */
function dropUnspokenSegments() {
  const b = lastBotBubble;
  for (const [key, seg] of b ? b.segments : []) {
    if (seg.dataset.status === "new" && !seg.textContent.trim()) {
      seg.remove();
      b.segments.delete(key);
    }
  }
}

function showLatency(l) {
  const b = lastBotBubble ?? ensureBotBubble();
  let line = b.el.querySelector(".latency");
  if (!line) {
    line = document.createElement("div");
    line.className = "latency";
    b.el.append(line);
  }
  line.textContent =
    `${(l.total / 1000).toFixed(2)} s · STT ${l.stt} · LLM ${l.llm_ttfb} · TTS ${l.tts_ttfb} ms`;
  line.title =
    `Voice-to-voice ${l.total} ms (server side): end of turn ${l.turn_end}, speech recognition ` +
    `${l.stt}, LLM first token ${l.llm_ttfb}, first audio ${l.tts_ttfb} ms`;
}

function showMetrics(m) {
  // Time-to-first-byte per service, for the details panel; the turn-latency line is the
  // summary people look at.
  for (const t of m.ttfb ?? []) {
    if (t.value > 0) addDetail(`${shortName(t.processor)} TTFB`, `${Math.round(t.value * 1000)} ms`);
  }
}

// ---------- transcript ----------

function ensureUserBubble() {
  if (!userBubble) {
    botBubble = closeBubble(botBubble);
    // If the bot's answer to the last thing the person said was dropped before a word of it
    // was heard (they went on talking), this is the same utterance: keep one bubble.
    const previous = ui.transcript.lastElementChild;
    userBubble = previous?.bubble?.who === "user" ? previous.bubble : newBubble("user", "You");
  }
  return userBubble;
}

function ensureBotBubble() {
  if (!botBubble) {
    userBubble = closeBubble(userBubble);
    botBubble = newBubble("bot", avatar.name);
    lastBotBubble = botBubble;
  }
  return botBubble;
}

function newBubble(who, label) {
  ui.empty.hidden = true;
  const el = document.createElement("li");
  el.className = `msg ${who} pending`; // dots until the first word arrives
  el.innerHTML = `<span class="who"></span><div class="bubble"><span class="text"><span class="final"></span><span class="interim"></span></span></div>`;
  el.querySelector(".who").textContent = label;
  ui.transcript.append(el);
  scrollTranscript(true);
  el.bubble = {
    who,
    el,
    text: el.querySelector(".text"),
    final: el.querySelector(".final"),
    interim: el.querySelector(".interim"),
    finalText: "",
    segments: new Map(),
  };
  return el.bubble;
}

/** Close a bubble; one that never got any words (a cough, an empty reply) is removed. */
function closeBubble(b) {
  if (!b) return null;
  b.interim.textContent = "";
  b.el.classList.remove("pending");
  if (!b.text.textContent.trim() && !b.el.querySelector(".latency")) {
    b.el.remove();
    if (b === lastBotBubble) lastBotBubble = null;
  }
  return null;
}

/** A quiet line across the transcript, e.g. between two calls. */
function addNote(text) {
  if (ui.transcript.lastElementChild?.classList.contains("note")) return;
  const li = document.createElement("li");
  li.className = "note";
  li.textContent = text;
  ui.transcript.append(li);
  scrollTranscript(true);
}

const timeNow = () => new Date().toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });

function closeBubbles() {
  userBubble = closeBubble(userBubble);
  botBubble = closeBubble(botBubble);
}

function scrollTranscript(force = false) {
  // Follow the conversation, unless the person scrolled up to read something.
  const t = ui.transcript;
  const nearBottom = t.scrollHeight - t.scrollTop - t.clientHeight < 120;
  if (force || nearBottom) t.scrollTop = t.scrollHeight;
}

// ---------- small UI helpers ----------

function setStatus(text, kind = "") {
  ui.status.replaceChildren(...withCode(text));
  ui.status.dataset.kind = kind;
}

function setActivity(what) {
  const label = { listening: "Listening…", thinking: "Thinking…", speaking: "Speaking" }[what];
  ui.activity.textContent = label ?? "";
  ui.portrait.dataset.activity = what;
}

function setTalkButton(inCall) {
  ui.talk.classList.toggle("hangup", inCall);
  ui.talkLabel.textContent = inCall ? "Hang up" : "Talk";
  if (!inCall) showConnection("disconnected");
}

function showBanner(text) {
  ui.banner.querySelector(".banner-text").replaceChildren(...withCode(text));
  ui.banner.hidden = false;
}

function addDetail(key, value) {
  let row = ui.details.querySelector(`[data-key="${CSS.escape(key)}"]`);
  if (!row) {
    row = document.createElement("div");
    row.dataset.key = key;
    row.innerHTML = "<dt></dt><dd></dd>";
    row.querySelector("dt").textContent = key;
    ui.details.append(row);
  }
  row.querySelector("dd").textContent = value;
}

const shortName = (processor = "") =>
  ["STT", "LLM", "TTS"].find((k) => processor.toUpperCase().includes(k)) ?? processor;

init();

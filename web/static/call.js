// One voice call to the server: microphone, WebRTC (Pipecat SmallWebRTC signaling) and the
// RTVI data channel. No UI here: the page listens to the callbacks and draws what it likes.
import { api } from "./ui.js";

// The RTVI protocol version the server speaks
// (pipecat/processors/frameworks/rtvi/models.py, PROTOCOL_VERSION). Announcing it in
// `client-ready` gets us the v2 message set (bot-output with word progress) and no
// "not compatible" error-response.
export const RTVI_VERSION = "2.2.0";
const RTVI_LABEL = "rtvi-ai";

// How long to wait for ICE gathering. We send every candidate inside the offer (no trickle),
// and host candidates are all a local server needs; they come within milliseconds, but a
// machine with a dead network interface can stall gathering for a long time.
const ICE_GATHERING_MAX_MS = 2000;

// Echo cancellation matters: without it the bot hears itself through the speakers and
// interrupts its own answers. The other two make a laptop mic usable for speech recognition.
const MIC_CONSTRAINTS = {
  audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
};

const randomId = () =>
  globalThis.crypto?.randomUUID?.() ?? `${Date.now()}-${Math.random().toString(16).slice(2)}`;

/** An error whose message is fit to show to a person as-is. */
export class CallError extends Error {}

export class Call {
  /**
   * @param {object} opts
   * @param {string} opts.avatar  the avatar id sent with the offer
   * @param {(state: string) => void} opts.onState  "connecting" | "connected" | "disconnected" | ...
   * @param {(msg: object) => void} opts.onMessage  each RTVI message from the server
   * @param {(stream: MediaStream) => void} opts.onRemoteStream  the bot's audio
   * @param {(reason: string) => void} opts.onEnded  the call ended without us hanging up
   */
  constructor({ avatar, onState, onMessage, onRemoteStream, onEnded }) {
    Object.assign(this, { avatar, onState, onMessage, onRemoteStream, onEnded });
    this.pc = null;
    this.mic = null;
    this.channel = null;
    this.pingTimer = null;
    this.closed = false;
  }

  /** Ask for the mic, connect, and resolve once the server has answered the offer. */
  async start() {
    this.onState("connecting");
    this.mic = await getMicrophone();
    if (this.closed) return this.stopTracks();

    const pc = new RTCPeerConnection(); // no ICE servers: nothing leaves this network
    this.pc = pc;
    pc.addEventListener("connectionstatechange", () => this.handleConnectionState());
    pc.addEventListener("track", (e) => {
      this.onRemoteStream(e.streams[0] ?? new MediaStream([e.track]));
    });

    // Audio is transceiver 0 on the server (AUDIO_TRANSCEIVER_INDEX); sendrecv because we
    // both talk and listen on it.
    const [track] = this.mic.getAudioTracks();
    pc.addTransceiver(track, { direction: "sendrecv", streams: [this.mic] });

    // The channel must exist before the offer, or the SDP has no data section.
    this.channel = pc.createDataChannel("chat", { ordered: true });
    this.channel.addEventListener("open", () => this.handleChannelOpen());
    this.channel.addEventListener("message", (e) => this.handleChannelMessage(e.data));
    this.channel.addEventListener("close", () => {
      clearInterval(this.pingTimer);
      this.checkEnded(); // the process running the call may have stopped
    });

    await pc.setLocalDescription(await pc.createOffer());
    await waitForIceGathering(pc, ICE_GATHERING_MAX_MS);
    if (this.closed) return;

    const answer = await postJSON("/api/offer", {
      sdp: pc.localDescription.sdp,
      type: pc.localDescription.type,
      request_data: { avatar: this.avatar },
    });
    if (this.closed) return;
    await pc.setRemoteDescription({ sdp: answer.sdp, type: answer.type });
    this.pcId = answer.pc_id;
  }

  /** Close everything. Safe to call more than once, and while start() is still running. */
  hangUp() {
    if (this.pcId && !this.closed) {
      // Tell the server now: closing the peer connection alone is noticed only when its
      // keep-alive pings stop. A beacon still goes out while the tab is closing (pagehide);
      // text/plain, because a beacon can't send JSON's content type without a preflight.
      const body = new Blob([JSON.stringify({ pc_id: this.pcId })], { type: "text/plain" });
      navigator.sendBeacon?.("/api/hangup", body);
    }
    this.closed = true;
    clearInterval(this.pingTimer);
    try {
      this.channel?.close();
    } catch {
      /* already closed */
    }
    this.pc?.close();
    this.stopTracks();
    this.onState("disconnected");
  }

  stopTracks() {
    // Stopping the tracks is what turns the browser's "mic in use" indicator off.
    this.mic?.getTracks().forEach((t) => t.stop());
    this.mic = null;
  }

  async handleConnectionState() {
    if (this.closed) return;
    const state = this.pc.connectionState;
    this.onState(state);
    if (state === "disconnected" || state === "failed") {
      if (await this.checkEnded()) return;
    }
    if (state === "failed" && !this.closed) {
      this.hangUp();
      this.onEnded("The connection failed. Is the server reachable from this device?");
    }
  }

  /** Ask the room whether it ended this call (a server error); if so, end it here saying
   * why. Resolves true when it did. */
  async checkEnded() {
    if (!this.pcId || this.closed) return false;
    let state;
    try {
      state = await api("GET", `/api/calls/${encodeURIComponent(this.pcId)}`);
    } catch {
      return false; // the room itself is unreachable: the connection state will say
    }
    if (!state?.ended || this.closed) return false;
    this.hangUp();
    this.onEnded(state.ended);
    return true;
  }

  handleChannelOpen() {
    // The server treats a peer that sent no "ping" for 3 s as gone (aiortc cannot tell),
    // so keep pinging while the channel is open.
    this.pingTimer = setInterval(() => {
      if (this.channel?.readyState === "open") this.channel.send("ping");
    }, 1000);
    this.sendRTVI("client-ready", {
      version: RTVI_VERSION,
      about: { library: "local-avatars-page", platform: navigator.platform || undefined },
    });
  }

  handleChannelMessage(raw) {
    let msg;
    try {
      msg = JSON.parse(raw);
    } catch {
      return; // not ours to read
    }
    if (msg.label === RTVI_LABEL) {
      this.onMessage(msg);
    } else if (msg.type === "signalling" && msg.message?.type === "peerLeft") {
      // The server ended the session (idle timeout, shutdown): it will not come back.
      this.hangUp();
      this.onEnded("The avatar ended the call.");
    }
    // "renegotiate" is only asked for video tracks; an audio-only call never gets it.
  }

  /** Send the microphone's audio or silence (mute, push-to-talk) without renegotiating. */
  setMicEnabled(on) {
    this.mic?.getAudioTracks().forEach((t) => (t.enabled = on));
  }

  /** Stop the avatar mid-reply, as talking over it would (flushes queued speech). */
  interrupt() {
    this.sendRTVI("client-message", { t: "interrupt", d: {} });
  }

  sendRTVI(type, data) {
    if (this.channel?.readyState !== "open") return;
    this.channel.send(JSON.stringify({ label: RTVI_LABEL, type, id: randomId(), data }));
  }
}

async function getMicrophone() {
  if (!navigator.mediaDevices?.getUserMedia) {
    // Browsers only expose the mic on secure origins: https, or http on localhost.
    throw new CallError(
      "This browser won't give the page a microphone here: open it over https, or as " +
        "localhost on the machine running the server.",
    );
  }
  try {
    return await navigator.mediaDevices.getUserMedia(MIC_CONSTRAINTS);
  } catch (e) {
    const why = {
      NotAllowedError:
        "Microphone access was denied. Allow it for this page (the icon in the address bar) and press Talk again.",
      SecurityError: "Microphone access was denied. Allow it for this page and press Talk again.",
      NotFoundError: "No microphone was found. Plug one in and press Talk again.",
      NotReadableError: "The microphone is busy or unavailable (another app may be using it).",
    }[e.name];
    throw new CallError(why ?? `Could not open the microphone: ${e.message || e.name}`);
  }
}

function waitForIceGathering(pc, maxMs) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve(); // on timeout, localDescription already holds the candidates found so far
    };
    const check = () => pc.iceGatheringState === "complete" && done();
    const timer = setTimeout(done, maxMs);
    pc.addEventListener("icegatheringstatechange", check);
  });
}

/** POST JSON; on HTTP errors, throw the server's own explanation as a CallError. */
async function postJSON(url, body) {
  try {
    return await api("POST", url, body);
  } catch (e) {
    // "The room is full ..." and "You already have 2 calls open ..." read as they are.
    const refused = (e.status === 429 || e.status === 503) && typeof e.payload?.detail === "string";
    throw new CallError(refused ? e.payload.detail : e.message);
  }
}

// One voice call to the server: microphone, WebRTC and the RTVI data channel, through Pipecat's
// own browser client (@pipecat-ai/client-js with @pipecat-ai/small-webrtc-transport, vendored in
// ./vendor/pipecat/, see its README). No UI here: the page listens to the callbacks and draws
// what it likes. This file adapts the client to the room:
//   * the microphone is ours (MicManager: echo cancellation, person-fit errors), never Daily's;
//   * every ICE candidate goes inside the offer (no trickle), no ICE servers at all;
//   * server refusals (429/503 with the room's words, 401 to sign in) fail start() at once;
//   * a reconnection (the transport's, after ICE fails) happens only while the room still holds
//     the call, so a call the server ended is never silently replaced by a new one;
//   * the page gets every RTVI message as it came, and `pc`, the live RTCPeerConnection.
import { api, describeDetail, toLogin } from "./ui.js";
import {
  LogLevel,
  PipecatClient,
  RTVIMessage,
  SmallWebRTCTransport,
  logger,
  setAboutClient,
} from "./vendor/pipecat/pipecat-client.js";

logger.setLevel(LogLevel.WARN); // Pipecat's debug and info lines stay out of the console

// The RTVI protocol version the server speaks
// (pipecat/processors/frameworks/rtvi/models.py, PROTOCOL_VERSION). client-js 1.13 announces
// 2.1.0, but the page, not client-js, reads the messages, and it reads the 2.2 set (user-input
// with backchannels): announcing 2.2.0 in `client-ready` gets it, and no "not compatible"
// error-response.
export const RTVI_VERSION = "2.2.0";

// Echo cancellation matters: without it the bot hears itself through the speakers and
// interrupts its own answers. The other two make a laptop mic usable for speech recognition.
const MIC_CONSTRAINTS = {
  audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
};

const CONNECTION_FAILED = "The connection failed. Is the server reachable from this device?";

/** An error whose message is fit to show to a person as-is. */
export class CallError extends Error {}

export class Call {
  /**
   * @param {object} opts
   * @param {string} opts.avatar  the avatar id sent with the offer
   * @param {(state: string) => void} opts.onState  "connecting" | "connected" | "disconnected" | ...
   * @param {(msg: object) => void} opts.onMessage  each RTVI message from the server, {id, type, data}
   * @param {(stream: MediaStream) => void} opts.onRemoteStream  the bot's audio
   * @param {(reason: string) => void} opts.onEnded  the call ended without us hanging up
   */
  constructor({ avatar, onState, onMessage, onRemoteStream, onEnded }) {
    Object.assign(this, { avatar, onState, onMessage, onRemoteStream, onEnded });
    /** The RTCPeerConnection of the call: the transport's own, replaced on a reconnection. */
    this.pc = null;
    this.mic = null;
    this.pcId = null;
    this.client = null;
    this.transport = null;
    this.answered = false;
    this.closed = false;
  }

  /** Ask for the mic, connect, and resolve once the server has answered the offer. */
  async start() {
    this.onState("connecting");
    this.mic = await getMicrophone();
    if (this.closed) return this.stopTracks();

    // The avatar goes in the URL as well as in requestData: client-js sends `requestData`
    // (camelCase), which the room's /api/offer (web.calls.OfferBody) reads only as
    // `request_data`; its `?avatar=` query parameter is read either way.
    const endpoint = `/api/offer?avatar=${encodeURIComponent(this.avatar)}`;
    const transport = new RoomTransport(this, {
      iceServers: [], // nothing leaves this network
      waitForICEGathering: true,
      mediaManager: new MicManager(this.mic),
      webrtcRequestParams: { endpoint, requestData: { avatar: this.avatar } },
    });
    this.transport = transport;
    const client = new PipecatClient({
      transport,
      enableMic: true,
      enableCam: false,
      disconnectOnBotDisconnect: false, // a peerLeft is handled below, saying why
      callbacks: {
        onBotDisconnected: () => this.end("The avatar ended the call."),
        // The transport gave up (reconnections failed) after the offer was answered.
        onDisconnected: () => this.answered && this.end(CONNECTION_FAILED),
      },
    });
    this.client = client;
    setAboutClient({
      library: "local-avatars-page",
      library_version: `@pipecat-ai/client-js ${client.version}`,
      platform: navigator.platform || undefined,
    });

    let answered;
    this.whenAnswered = new Promise((resolve) => (answered = resolve));
    this.markAnswered = () => {
      this.answered = true;
      answered();
    };
    try {
      await client.initDevices();
      // connect() resolves on bot-ready; start() only waits for the answer, as before.
      const connecting = client.connect();
      connecting.catch(() => this.answered && this.end(CONNECTION_FAILED));
      await Promise.race([this.whenAnswered, connecting]);
    } catch (e) {
      if (this.closed) return;
      throw await explain(e);
    }
  }

  /** Close everything. Safe to call more than once, and while start() is still running. */
  hangUp() {
    if (!this.closed) this.tellServer(this.pcId);
    this.closed = true;
    // Closes the data channel and the peer connection at once (the rest is asynchronous).
    this.client?.disconnect().catch(() => {});
    this.stopTracks();
    this.onState("disconnected");
  }

  /** Tell the server now that `pcId` is over: closing the peer connection alone is noticed
   * only when its keep-alive pings stop. A beacon still goes out while the tab is closing
   * (pagehide); text/plain, because a beacon can't send JSON's content type without a
   * preflight. */
  tellServer(pcId) {
    if (!pcId) return;
    const body = new Blob([JSON.stringify({ pc_id: pcId })], { type: "text/plain" });
    navigator.sendBeacon?.("/api/hangup", body);
  }

  /** The call ended on its own: close it here and say why. */
  end(reason) {
    if (this.closed) return;
    this.hangUp();
    this.onEnded(reason);
  }

  stopTracks() {
    // Stopping the tracks is what turns the browser's "mic in use" indicator off.
    this.mic?.getTracks().forEach((t) => t.stop());
    this.mic = null;
  }

  /** Each peer connection the transport makes (the first, and one per reconnection). */
  adopt(pc) {
    this.pc = pc;
    pc.addEventListener("connectionstatechange", () => {
      if (pc === this.pc) this.handleConnectionState();
    });
    pc.addEventListener("track", (e) => {
      if (pc !== this.pc || e.track.kind !== "audio") return;
      this.onRemoteStream(e.streams[0] ?? new MediaStream([e.track]));
    });
  }

  async handleConnectionState() {
    if (this.closed) return;
    const state = this.pc.connectionState;
    this.onState(state);
    // A failed ICE connection makes the transport reconnect (RoomTransport decides whether).
    if (state === "disconnected" || state === "failed") await this.checkEnded();
  }

  /** Ask the room whether it ended this call (a server error); if so, end it here saying
   * why. Resolves true when it did. */
  async checkEnded() {
    const state = await this.callState();
    if (!state?.ended || this.closed) return false;
    this.end(state.ended);
    return true;
  }

  /** What the room says of this call ({live, ended}), or null when it can't be asked. */
  async callState() {
    if (!this.pcId || this.closed) return null;
    try {
      return await api("GET", `/api/calls/${encodeURIComponent(this.pcId)}`);
    } catch {
      return null; // the room itself is unreachable: the connection state will say
    }
  }

  /** Whether a new peer connection may replace the failed one: only for a call the room still
   * holds (otherwise the offer would start a new call). Ends the call when not. */
  async mayReconnect() {
    if (this.closed) return false;
    const state = await this.callState();
    if (this.closed) return false;
    if (state && !state.live) {
      this.end(state.ended || CONNECTION_FAILED);
      return false;
    }
    return true; // live, or the room is unreachable: the transport's attempts will tell
  }

  /** Send the microphone's audio or silence (mute, push-to-talk) without renegotiating. */
  setMicEnabled(on) {
    if (!this.client) return;
    // client.enableMic also tells the server (a trackStatus message), which needs the data
    // channel; before it opens, the transport sends the mic's state as it opens.
    if (this.transport.dc?.readyState === "open") this.client.enableMic(on);
    else this.transport.mediaManager.enableMic(on);
  }

  /** Stop the avatar mid-reply, as talking over it would (flushes queued speech). */
  interrupt() {
    if (this.transport?.dc?.readyState !== "open") return;
    this.client.sendClientMessage("interrupt", {});
  }
}

/**
 * Pipecat's SmallWebRTC transport, fitted to the room. Each override is small and names the
 * transport's own method it changes (client-js 1.13.1 / small-webrtc-transport 1.10.8).
 */
class RoomTransport extends SmallWebRTCTransport {
  constructor(call, opts) {
    super(opts);
    this.call = call;
  }

  /** Every RTVI message goes to the page first, as it came, then to client-js. */
  initialize(options, messageHandler) {
    super.initialize(options, (msg) => {
      try {
        if (!this.call.closed) this.call.onMessage(msg);
      } finally {
        messageHandler(msg);
      }
    });
  }

  /** The page reads the live peer connection (state, receivers, stats). */
  createPeerConnection() {
    const pc = super.createPeerConnection();
    this.call.adopt(pc);
    return pc;
  }

  /** The data channel closing may mean the process running the call stopped. */
  createDataChannel(label, options) {
    const dc = super.createDataChannel(label, options);
    dc.addEventListener("close", () => {
      if (dc === this.dc) this.call.checkEnded();
    });
    return dc;
  }

  /** No trickle: the offer carries every candidate (waitForICEGathering), so nothing is
   * PATCHed; host candidates are all a local server needs. */
  sendIceCandidate() {}

  /** client-ready announcing the protocol the page reads (see RTVI_VERSION). */
  sendReadyMessage() {
    this.state = "ready";
    const ready = RTVIMessage.clientReady();
    ready.data = { ...ready.data, version: RTVI_VERSION };
    this.sendMessage(ready);
  }

  async negotiate(recreatePeerConnection = false) {
    await super.negotiate(recreatePeerConnection);
    if (this.pc_id) {
      if (this.call.closed) return this.call.tellServer(this.pc_id); // hung up meanwhile
      this.call.pcId = this.pc_id;
      if (!this._lastNegotiationError) this.call.markAnswered?.();
    }
    // The transport stops at once on a 4xx, and retries anything else 3 times, 2 s apart.
    // For a first offer that is a "room is full" (503) or a server that is down: say so now.
    if (this._lastNegotiationError && this.state === "connecting" && !this.call.answered) {
      await this.stop(this.buildTransportStartError());
    }
  }

  async attemptReconnection(recreatePeerConnection = false) {
    if (recreatePeerConnection && !(await this.call.mayReconnect())) return;
    return super.attemptReconnection(recreatePeerConnection);
  }

  /** Pipecat stops every sender's track here, but on a reconnection the old peer connection
   * shares the microphone's track with the new one; MicManager stops it when the call ends. */
  closePeerConnection(pc) {
    pc.getTransceivers().forEach((t) => t.stop?.());
    pc.close();
  }
}

/**
 * The microphone, as the transport's media manager (the interface of small-webrtc-transport's
 * MediaManager: its default, DailyMediaManager, would load Daily's SDK from Daily's CDN).
 * Audio only; the bot's audio is played by the page from the peer connection's track.
 */
class MicManager {
  constructor(stream) {
    this.stream = stream;
    this._callbacks = {};
    this._micEnabled = true;
  }
  setUserAudioCallback() {}
  setClientOptions(options, override = false) {
    if (this._options && !override) return;
    this._options = options;
    this._callbacks = options.callbacks ?? {};
    this._micEnabled = options.enableMic ?? true;
  }
  async initialize() {
    // Tells client-js the mic is granted (its MediaState), so connect() asks for no devices.
    this._callbacks.onMicUpdated?.(this.selectedMic);
  }
  async connect() {}
  async disconnect() {
    this.stream?.getTracks().forEach((t) => t.stop());
  }
  tracks() {
    const [audio] = this.stream?.getAudioTracks() ?? [];
    return { local: audio ? { audio } : {} };
  }
  enableMic(on) {
    this._micEnabled = on;
    this.stream?.getAudioTracks().forEach((t) => (t.enabled = on));
  }
  enableCam() {}
  enableScreenShare() {}
  get isMicEnabled() {
    return this._micEnabled;
  }
  get isCamEnabled() {
    return false;
  }
  get isSharingScreen() {
    return false;
  }
  get supportsScreenShare() {
    return false; // no third (screen video) transceiver in the offer
  }
  async getAllMics() {
    return [];
  }
  async getAllCams() {
    return [];
  }
  async getAllSpeakers() {
    return [];
  }
  updateMic() {}
  updateCam() {}
  updateSpeaker() {}
  get selectedMic() {
    const [track] = this.stream?.getAudioTracks() ?? [];
    const settings = track?.getSettings?.() ?? {};
    return { deviceId: settings.deviceId || "default", label: track?.label ?? "", kind: "audioinput" };
  }
  get selectedCam() {
    return {};
  }
  get selectedSpeaker() {
    return {};
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

/** The error start() throws for a failed connect: the server's own explanation as a
 * CallError, like the page's other API calls (ui.js api()). */
async function explain(e) {
  const cause = e?.cause;
  if (typeof Response !== "undefined" && cause instanceof Response) {
    if (cause.status === 401) {
      toLogin(); // not signed in, or the sign-in expired
      return new Promise(() => {}); // leaving the page: nothing after this should run
    }
    const payload = await cause.json().catch(() => null);
    // "The room is full ..." and "You already have 2 calls open ..." read as they are.
    if ((cause.status === 429 || cause.status === 503) && typeof payload?.detail === "string") {
      return new CallError(payload.detail);
    }
    return new CallError(
      `${describeDetail(payload?.detail) || cause.statusText} (HTTP ${cause.status})`,
    );
  }
  if (cause instanceof TypeError) return new CallError("The server did not answer. Is it still running?");
  return cause instanceof Error ? cause : e;
}

// Sanke signaling + SFU client (protocol v1, docs/protocol.md).
//
// Join over the signaling WebSocket, publish (optionally) a camera/mic stream, receive what
// the SFU forwards. The client offers first; later the SFU renegotiates with server offers,
// which are applied (one at a time) only once our own offer is answered. `rejoin` and a
// failed peer connection start a fresh peer connection and offer again on the same socket.
//
// Two video layers: the SFU (media/transport.py VIDEO_LAYERS) takes the publisher's video
// m-lines in order as "high" then "low", so with `layers: true` the camera goes out on two
// video transceivers, the second a clone scaled down (scaleResolutionDownBy) with a small
// maxBitrate.
//
// A screen share is a separate source: `startScreen(track)` adds (or reuses) one more video
// transceiver, labels its mid with `set_source {mid, source: "screen"}` before offering it,
// and offers on the same peer connection; `stopScreen()` makes it inactive and offers again.
// Receivers get it as its own track with source "screen". No SDP is ever edited.
//
// Events (EventTarget; `client.on(type, fn)` passes event.detail): every server message by
// its type ("joined", "participant_joined", "hand_raised", …), plus "track" {track, stream,
// participantId, kind, source}, "trackended" {track, participantId}, "state" {state},
// "mediaerror" {error}, "fatal" {code, message}, "reconnecting" {attempt}, "closed".
const FATAL = new Set(["token_missing", "token_invalid", "token_expired", "token_not_yet_valid", "token_revoked",
  "wrong_room", "forbidden", "room_not_found", "room_closed", "room_full", "kicked", "lesson_not_open"]);
// Close codes after which reconnecting with the same token cannot help (docs/protocol.md).
const FATAL_CLOSE = new Map([[4003, "kicked"], [4004, "room_closed"], [4005, "token_expired"], [4006, "token_revoked"]]);
// The high layer's cap by the camera's height: what Chromium needs to actually send that
// resolution (docs/media.md; with 1.5 Mbps a 720p camera stays at 960x540 on VP8). The low
// layer is 320x180 at 150 kbps whatever the camera. A screen share (courseware) is sent
// with contentHint "detail" (sharp text before frame rate) at up to 1080p.
export const HIGH_CAPS = [[360, 800_000], [540, 1_500_000], [720, 2_500_000], [1080, 4_500_000]];
export const HIGH_LAYER = { maxBitrate: 2_500_000 }; // the teacher's 1280x720 camera
export const LOW_LAYER = { scaleResolutionDownBy: 4, maxBitrate: 150_000 };
export const SCREEN_LAYER = { maxBitrate: 3_000_000 };

// A publisher reports its own view of its sending every 2 s (the `stats` message: the
// browser's send-side estimate, what each video m-line sends and why it sends less, what the
// camera captures); the SFU sees only what arrives. The server accepts one a second.
const STATS_INTERVAL_MS = 2000;
const LIMITATIONS = new Set(["none", "cpu", "bandwidth", "other"]);

export function highLayerFor(height) {
  const cap = HIGH_CAPS.find(([h]) => height <= h) || HIGH_CAPS[HIGH_CAPS.length - 1];
  return { maxBitrate: cap[1] };
}

export function lowLayerFor(height) {
  return { scaleResolutionDownBy: Math.max(1, (height || 720) / 180), maxBitrate: LOW_LAYER.maxBitrate };
}

export class SfuClient extends EventTarget {
  constructor({ wsUrl, token, name, publish = false, stream = null, layers = false, reconnect = false,
    keepResolution = false, videoConstraints = { width: 640, height: 360 }, onTrack = () => {}, log = () => {} }) {
    super();
    Object.assign(this, { wsUrl, token, name, publish, stream, layers, reconnect, keepResolution, videoConstraints, onTrack, log });
    this.owners = new Map(); // remote track id -> participant id (from "tracks" messages)
    this.sources = new Map(); // remote track id -> "camera" | "microphone" | "screen"
    this.participants = new Map(); // id -> ParticipantInfo, kept current from room events
    this.pending = new Map();
    this.chain = Promise.resolve(); // server offers, one at a time
    this.state = "new";
    this.closed = false;
    this.attempt = 0;
    this.mediaAttempt = 0;
  }

  on(type, fn) { this.addEventListener(type, (e) => fn(e.detail)); return this; }
  emit(type, detail) { this.dispatchEvent(new CustomEvent(type, { detail })); }

  /** Connects and joins; resolves with the `joined` message, rejects with {code, message}. */
  async start() {
    if (this.publish && !this.stream) {
      this.stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: this.videoConstraints });
    }
    return this.connect();
  }

  async connect() {
    const ws = new WebSocket(this.wsUrl);
    this.ws = ws;
    await new Promise((ok, fail) => {
      ws.onopen = ok;
      ws.onerror = () => fail({ code: "network", message: "cannot reach the server" });
      ws.onclose = () => fail({ code: "network", message: "cannot reach the server" });
    });
    const joined = new Promise((ok, fail) => { this.onJoined = ok; this.onJoinError = fail; });
    this.fatalError = null;
    ws.onmessage = (e) => this.handle(JSON.parse(e.data));
    ws.onclose = (e) => this.socketClosed(ws, e);
    this.send({ type: "join", token: this.token, ...(this.name ? { name: this.name } : {}) });
    let info;
    try { info = await joined; } catch (err) { if (ws.readyState <= 1) ws.close(); throw err; }
    this.attempt = 0;
    clearInterval(this.pinger);
    this.pinger = setInterval(() => { if (ws.readyState === 1) this.send({ type: "ping" }); }, 10000);
    this.mediaReady = this.negotiate().then(() => "ok", (e) => "failed: " + (e.message || e.code || e));
    return info;
  }

  socketClosed(ws, event) {
    if (ws !== this.ws) return;
    clearInterval(this.pinger);
    for (const { fail } of this.pending.values()) fail({ code: "network", message: "connection closed" });
    this.pending.clear();
    if (this.onJoinError) this.onJoinError(this.fatalError || { code: "network", message: "connection closed" });
    if (this.pc) { this.pc.close(); this.pc = null; }
    this.setState("disconnected");
    const fatal = this.fatalError ||
      (FATAL_CLOSE.has(event.code) && { code: FATAL_CLOSE.get(event.code), message: FATAL_CLOSE.get(event.code) });
    if (this.closed) return;
    if (fatal) { this.closed = true; this.emit("fatal", fatal); this.emit("closed", {}); return; }
    if (!this.reconnect) { this.emit("closed", { code: event.code }); return; }
    this.attempt += 1;
    this.emit("reconnecting", { attempt: this.attempt });
    setTimeout(() => this.reconnectOnce(), Math.min(1000 * 2 ** (this.attempt - 1), 15000));
  }

  async reconnectOnce() {
    if (this.closed) return;
    try { await this.connect(); } catch (err) {
      if (err && FATAL.has(err.code)) { this.closed = true; this.emit("fatal", err); }
    }
  }

  send(message) { if (this.ws && this.ws.readyState === 1) this.ws.send(JSON.stringify(message)); }

  request(message, replyType) {
    const rid = Math.random().toString(36).slice(2);
    return new Promise((ok, fail) => {
      this.pending.set(rid, { ok, fail, replyType });
      this.send({ ...message, rid });
    });
  }

  handle(msg) {
    const waiting = msg.rid && this.pending.get(msg.rid);
    if (waiting) {
      this.pending.delete(msg.rid);
      if (msg.type === "error") waiting.fail(msg); else waiting.ok(msg);
      return;
    }
    switch (msg.type) {
      case "joined":
        this.participantId = msg.participant_id;
        this.role = msg.role;
        this.roomId = msg.room_id;
        this.iceServers = (msg.ice_servers || []).map((s) => ({ urls: s.urls, username: s.username || undefined, credential: s.credential || undefined }));
        this.participants = new Map(msg.participants.map((p) => [p.id, { ...p }]));
        // a room whose kind is recorded says so right after joined; no word: never recorded
        this.recording = { on: false, enabled: false };
        if (!this.participants.has(msg.participant_id)) this.participants.set(msg.participant_id, { id: msg.participant_id, role: msg.role, self: true });
        if (this.onJoined) { this.onJoined(msg); this.onJoined = this.onJoinError = null; }
        break;
      case "error":
        this.log("error " + msg.code + ": " + msg.message);
        if (this.onJoinError) {
          if (FATAL.has(msg.code)) this.fatalError = msg;
          this.onJoinError(msg); this.onJoined = this.onJoinError = null;
        } else if (msg.code === "kicked" || msg.code === "token_expired" || msg.code === "token_revoked") this.fatalError = msg;
        break;
      case "participant_joined": this.participants.set(msg.participant.id, { ...msg.participant }); break;
      case "participant_left": this.participants.delete(msg.participant_id); break;
      case "hand_raised": this.patch(msg.participant_id, { hand_raised: msg.raised }); break;
      case "stage_changed": this.patch(msg.participant_id, msg.on_stage ? { on_stage: true, hand_raised: false } : { on_stage: false }); break;
      case "muted": this.patch(msg.participant_id, { muted: msg.muted }); break;
      case "recording": this.recording = { on: !!msg.on, enabled: !!msg.enabled }; break;
      case "tracks":
        for (const t of msg.tracks) { this.owners.set(t.track_id, t.participant_id); this.sources.set(t.track_id, t.source); }
        break;
      case "offer":
        this.chain = this.chain.then(() => this.applyServerOffer(msg.sdp)).catch((e) => this.log("renegotiation failed: " + e));
        break;
      case "rejoin":
        this.log("rejoin: " + msg.reason);
        this.negotiate().catch(() => {});
        break;
      case "room_closed":
        this.fatalError = { code: "room_closed", message: "room closed" };
        break;
      default: break;
    }
    this.emit(msg.type, msg);
    this.emit("message", msg);
  }

  patch(id, fields) { const p = this.participants.get(id); if (p) Object.assign(p, fields); }

  // --- media ---------------------------------------------------------------------------

  makePc() {
    if (this.pc) this.pc.close();
    const pc = new RTCPeerConnection({ iceServers: this.iceServers || [] });
    this.pc = pc;
    pc.ontrack = (e) => {
      const stream = e.streams[0];
      const participantId = this.owners.get(e.track.id) || (stream && stream.id);
      const source = this.sources.get(e.track.id) || (e.track.kind === "audio" ? "microphone" : "camera");
      this.onTrack(e, participantId);
      this.emit("track", { track: e.track, stream, participantId, kind: e.track.kind, source });
      if (stream) stream.onremovetrack = (r) => this.emit("trackended", { track: r.track, participantId: this.owners.get(r.track.id) || stream.id });
    };
    pc.onconnectionstatechange = () => {
      if (pc !== this.pc) return;
      this.setState(pc.connectionState);
      if (pc.connectionState === "failed" && !this.closed) this.retryMedia();
    };
    const stream = this.stream;
    this.senders = {};

    if (stream) {
      const audio = stream.getAudioTracks()[0];
      const video = stream.getVideoTracks()[0];
      if (audio) {
        this.senders.audio = pc.addTransceiver(audio, { direction: "sendonly", streams: [stream] });
      }
      if (video) {
        const height = video.getSettings().height || this.videoConstraints.height || 720;
        this.senders.high = pc.addTransceiver(video, { direction: "sendonly", streams: [stream], sendEncodings: [this.layers ? highLayerFor(height) : {}] });
        if (this.keepResolution) keepResolution(this.senders.high.sender);
        if (this.layers) {
          if (this.lowTrack) this.lowTrack.stop();
          this.lowTrack = video.clone();
          this.senders.low = pc.addTransceiver(this.lowTrack, { direction: "sendonly", streams: [stream], sendEncodings: [lowLayerFor(height)] });
        }
      }
    }
    if (this.screenTrack) this.addScreen(pc, this.screenTrack);
    return pc;
  }

  addScreen(pc, track) {
    if ("contentHint" in track) track.contentHint = "detail";
    this.senders.screen = pc.addTransceiver(track, { direction: "sendonly", streams: [new MediaStream([track])], sendEncodings: [SCREEN_LAYER] });
  }

  /** Tell the SFU which of our m-lines is the screen share (before the offer that carries it). */
  labelSources() {
    const screen = this.senders && this.senders.screen;
    if (screen && screen.mid !== null) this.send({ type: "set_source", mid: screen.mid, source: "screen" });
  }

  /** Share a screen (a separate video source next to the camera). */
  async startScreen(track) {
    this.screenTrack = track;
    if (!this.pc) return;
    const screen = this.senders.screen;
    if (screen) {
      if ("contentHint" in track) track.contentHint = "detail";
      await screen.sender.replaceTrack(track);
      screen.direction = "sendonly";
    } else {
      this.addScreen(this.pc, track);
    }
    await this.offerAgain();
  }

  async stopScreen() {
    this.screenTrack = null;
    const screen = this.senders && this.senders.screen;
    if (!this.pc || !screen || screen.direction === "inactive") return;
    await screen.sender.replaceTrack(null);
    screen.direction = "inactive";
    await this.offerAgain();
  }

  /** Offer on the existing peer connection (our own m-lines changed), between server offers. */
  offerAgain() {
    const run = async () => {
      await this.answered;
      const pc = this.pc;
      if (!pc) return;
      await pc.setLocalDescription();
      this.labelSources();
      await gathered(pc);
      try {
        const answer = await this.request({ type: "offer", sdp: pc.localDescription.sdp }, "answer");
        if (pc === this.pc) await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
      } catch (error) {
        if (pc !== this.pc) return;
        await pc.setLocalDescription({ type: "rollback" });
        if (error.code !== "conflict") throw error;
        // A server offer is on its way: answer it first (it queues behind us), then offer again.
        setTimeout(() => this.offerAgain().catch((e) => this.log("offer failed: " + (e.message || e))), 300);
      }
    };
    const done = this.chain.then(run);
    this.chain = done.catch((e) => this.log("offer failed: " + (e.message || e)));
    return done;
  }

  async negotiate() {
    const pc = this.makePc();
    let answered;
    this.answered = new Promise((ok) => { answered = ok; });
    this.chain = Promise.resolve();
    try {
      await pc.setLocalDescription();
      this.labelSources();
      await gathered(pc);
      const answer = await this.request({ type: "offer", sdp: pc.localDescription.sdp }, "answer");
      if (pc !== this.pc) return;
      await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
      this.mediaAttempt = 0;
      answered();
      if (this.stream) this.startReporting();
    } catch (error) {
      if (pc !== this.pc || this.closed) return;
      this.log("media negotiation failed: " + (error.message || error));
      this.emit("mediaerror", { error });
      if (error.code !== "network") this.retryMedia();
      throw error;
    }
  }

  retryMedia() {
    if (this.closed || this.retrying) return;
    this.mediaAttempt += 1;
    this.retrying = setTimeout(() => {
      this.retrying = null;
      if (!this.closed && this.ws && this.ws.readyState === 1) this.negotiate().catch(() => {});
    }, Math.min(2000 * 2 ** (this.mediaAttempt - 1), 30000));
  }

  async applyServerOffer(sdp) {
    await this.answered; // a server offer may overtake the answer to our own offer
    const pc = this.pc;
    if (!pc) return;
    await pc.setRemoteDescription({ type: "offer", sdp });
    await pc.setLocalDescription();
    await gathered(pc);
    if (pc === this.pc) this.send({ type: "answer", sdp: pc.localDescription.sdp });
    this.renegotiations = (this.renegotiations || 0) + 1;
  }

  setState(state) { this.state = state; this.log("pc " + state); this.emit("state", { state }); }

  /** Send another camera track (a different device) without renegotiating. */
  async replaceVideo(track) {
    if (!this.senders || !this.senders.high) return;
    await this.senders.high.sender.replaceTrack(track);
    if (this.senders.low) {
      const low = track ? track.clone() : null;
      await this.senders.low.sender.replaceTrack(low);
      if (this.lowTrack) this.lowTrack.stop();
      this.lowTrack = low;
    }
    if (track && this.layers) await this.fitLayers(track.getSettings().height);
  }

  /** Stop what this client captures from the camera itself (the low layer's copy), so the
   * camera can be reopened at another size; replaceVideo() sends again. */
  releaseVideo() {
    if (this.lowTrack) this.lowTrack.stop();
  }

  /** The layers' caps follow the camera (a 1080p camera's high layer may send 4.5 Mbps; the
   * low layer stays 320x180). */
  async fitLayers(height) {
    for (const [t, encoding] of [[this.senders.high, highLayerFor(height)], [this.senders.low, lowLayerFor(height)]]) {
      if (!t) continue;
      const params = t.sender.getParameters();
      if (!params.encodings || !params.encodings.length) continue;
      Object.assign(params.encodings[0], encoding);
      await t.sender.setParameters(params);
    }
  }

  async replaceAudio(track) { if (this.senders && this.senders.audio) await this.senders.audio.sender.replaceTrack(track); }

  // --- room actions --------------------------------------------------------------------

  raiseHand() { this.send({ type: "raise_hand" }); }
  lowerHand(participantId) { this.send({ type: "lower_hand", ...(participantId ? { participant_id: participantId } : {}) }); }
  setStage(participantId, onStage) { this.send({ type: "set_stage", participant_id: participantId, on_stage: onStage }); }
  mute(participantId, muted = true) { this.send({ type: "mute", ...(participantId ? { participant_id: participantId } : {}), muted }); }
  kick(participantId, reason = "") { this.send({ type: "kick", participant_id: participantId, reason }); }
  setLayer(layer) { this.send({ type: "set_layer", layer }); }
  /** Teacher: stop (the part is finished) or restart (a new part) the lesson's recording. */
  setRecording(on) { this.send({ type: "set_recording", on: !!on }); }

  /** Leave the room (the server answers `left` and closes the socket). */
  /** Teacher: end the lesson for everyone (the room closes and the lesson is recorded). */
  async endLesson() {
    const closed = new Promise((ok) => { this.on("room_closed", ok); setTimeout(ok, 3000); });
    this.send({ type: "end_lesson" });
    await closed;
    this.closed = true;
    this.close();
  }

  async leave() {
    this.closed = true;
    try { await Promise.race([this.request({ type: "leave" }, "left"), new Promise((ok) => setTimeout(ok, 2000))]); } catch { /* closed */ }
    this.close();
  }

  async stats() {
    const out = { inboundVideo: [], inboundAudio: [], outbound: [] };
    if (!this.pc) return out;
    (await this.pc.getStats()).forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "video") out.inboundVideo.push({ framesDecoded: s.framesDecoded, codecId: s.codecId, bytes: s.bytesReceived, track: s.trackIdentifier, participantId: this.owners.get(s.trackIdentifier) });
      if (s.type === "inbound-rtp" && s.kind === "audio") out.inboundAudio.push({ packets: s.packetsReceived, bytes: s.bytesReceived, samples: s.totalSamplesReceived, track: s.trackIdentifier, participantId: this.owners.get(s.trackIdentifier) });
      if (s.type === "outbound-rtp") out.outbound.push({ kind: s.kind, packets: s.packetsSent, frames: s.framesEncoded, width: s.frameWidth, height: s.frameHeight, mid: s.mid });
    });
    return out;
  }

  startReporting() {
    clearInterval(this.reporter);
    this.sentBefore = new Map(); // outbound-rtp id -> {bytes, at}: bitrate over the last interval
    this.reporter = setInterval(() => this.reportStats().catch((e) => this.log("stats failed: " + e)), STATS_INTERVAL_MS);
  }

  /** One `stats` message from getStats(): what this page sends, estimates and captures. */
  async reportStats() {
    const pc = this.pc;
    if (!pc || !this.ws || this.ws.readyState !== 1) return;
    const report = await pc.getStats();
    const clamp = (v, max) => (typeof v === "number" && Number.isFinite(v) ? Math.min(max, Math.max(0, v)) : undefined);
    let pairId;
    report.forEach((s) => { if (s.type === "transport" && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId; });
    let available;
    report.forEach((s) => {
      const selected = pairId ? s.id === pairId : s.nominated && s.state === "succeeded";
      if (s.type === "candidate-pair" && selected && s.availableOutgoingBitrate !== undefined) available = s.availableOutgoingBitrate;
    });
    const outbound = [];
    report.forEach((s) => {
      if (s.type !== "outbound-rtp" || s.kind !== "video" || !s.mid || outbound.length >= 8) return;
      const before = this.sentBefore.get(s.id);
      this.sentBefore.set(s.id, { bytes: s.bytesSent || 0, at: s.timestamp });
      const seconds = before ? (s.timestamp - before.at) / 1000 : 0;
      const reason = LIMITATIONS.has(s.qualityLimitationReason) ? s.qualityLimitationReason : "other";
      outbound.push({
        mid: String(s.mid).slice(0, 16),
        width: clamp(s.frameWidth, 8192),
        height: clamp(s.frameHeight, 8192),
        fps: clamp(s.framesPerSecond, 240),
        bitrate_bps: seconds > 0 ? clamp(Math.round((8 * ((s.bytesSent || 0) - before.bytes)) / seconds), 1e9) : undefined,
        quality_limitation: s.qualityLimitationReason === undefined ? "none" : reason,
      });
    });
    const camera = this.senders && this.senders.high && this.senders.high.sender.track;
    const settings = camera ? camera.getSettings() : {};
    const capture = settings.width && settings.height ? { width: clamp(Math.round(settings.width), 8192), height: clamp(Math.round(settings.height), 8192) } : undefined;
    const message = { type: "stats", outbound };
    const estimate = clamp(available, 1e9);
    if (estimate !== undefined) message.available_outgoing_bitrate = Math.round(estimate);
    if (capture) message.capture = capture;
    this.lastStats = message;
    this.send(message); // JSON.stringify leaves the undefined fields out
  }

  close() {
    this.closed = true;
    clearInterval(this.pinger);
    clearInterval(this.reporter);
    clearTimeout(this.retrying);
    if (this.pc) { this.pc.close(); this.pc = null; }
    if (this.lowTrack) { this.lowTrack.stop(); this.lowTrack = null; }
    this.screenTrack = null;
    if (this.ws && this.ws.readyState <= 1) this.ws.close();
  }
}

/**
 * The teacher's camera keeps its resolution when its uplink or its PC cannot keep up: it
 * sends fewer frames instead (a blackboard at 720p and 10 fps is readable, at 360p it is
 * not; weak classrooms get the low layer anyway). Chromium's default "balanced" drops to
 * 640x360 under a 1 Mbps uplink and takes ~10 s to climb back once the link recovers.
 */
export async function keepResolution(sender) {
  try {
    const params = sender.getParameters();
    params.degradationPreference = "maintain-resolution";
    await sender.setParameters(params);
  } catch { /* a browser without it keeps its own preference */ }
}

function gathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((ok) => {
    const done = () => { if (pc.iceGatheringState === "complete") { pc.removeEventListener("icegatheringstatechange", done); ok(); } };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(ok, 3000); // send what we have
  });
}

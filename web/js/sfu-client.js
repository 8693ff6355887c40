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
// Events (EventTarget; `client.on(type, fn)` passes event.detail): every server message by
// its type ("joined", "participant_joined", "hand_raised", …), plus "track" {track, stream,
// participantId, kind, source}, "trackended" {track, participantId}, "state" {state},
// "mediaerror" {error}, "fatal" {code, message}, "reconnecting" {attempt}, "closed".
const FATAL = new Set(["token_missing", "token_invalid", "token_expired", "token_not_yet_valid", "wrong_room",
  "forbidden", "room_not_found", "room_closed", "room_full", "kicked", "lesson_not_open"]);
export const LOW_LAYER = { scaleResolutionDownBy: 4, maxBitrate: 150_000 };
export const HIGH_LAYER = { maxBitrate: 1_500_000 };

export class SfuClient extends EventTarget {
  constructor({ wsUrl, token, name, publish = false, stream = null, layers = false, reconnect = false,
    videoConstraints = { width: 640, height: 360 }, onTrack = () => {}, log = () => {} }) {
    super();
    Object.assign(this, { wsUrl, token, name, publish, stream, layers, reconnect, videoConstraints, onTrack, log });
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
    const fatal = this.fatalError || (event.code === 4003 && { code: "kicked", message: "kicked" }) ||
      (event.code === 4004 && { code: "room_closed", message: "room closed" });
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
        if (!this.participants.has(msg.participant_id)) this.participants.set(msg.participant_id, { id: msg.participant_id, role: msg.role, self: true });
        if (this.onJoined) { this.onJoined(msg); this.onJoined = this.onJoinError = null; }
        break;
      case "error":
        this.log("error " + msg.code + ": " + msg.message);
        if (this.onJoinError) {
          if (FATAL.has(msg.code)) this.fatalError = msg;
          this.onJoinError(msg); this.onJoined = this.onJoinError = null;
        } else if (msg.code === "kicked") this.fatalError = msg;
        break;
      case "participant_joined": this.participants.set(msg.participant.id, { ...msg.participant }); break;
      case "participant_left": this.participants.delete(msg.participant_id); break;
      case "hand_raised": this.patch(msg.participant_id, { hand_raised: msg.raised }); break;
      case "stage_changed": this.patch(msg.participant_id, msg.on_stage ? { on_stage: true, hand_raised: false } : { on_stage: false }); break;
      case "muted": this.patch(msg.participant_id, { muted: msg.muted }); break;
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
        preferOpus(this.senders.audio);
      }
      if (video) {
        this.senders.high = pc.addTransceiver(video, { direction: "sendonly", streams: [stream], sendEncodings: [this.layers ? HIGH_LAYER : {}] });
        preferH264(this.senders.high);
        if (this.layers) {
          if (this.lowTrack) this.lowTrack.stop();
          this.lowTrack = video.clone();
          this.senders.low = pc.addTransceiver(this.lowTrack, { direction: "sendonly", streams: [stream], sendEncodings: [LOW_LAYER] });
          preferH264(this.senders.low);
        }
      }
    }
    return pc;
  }

  async negotiate() {
    const pc = this.makePc();
    let answered;
    this.answered = new Promise((ok) => { answered = ok; });
    this.chain = Promise.resolve();
    try {
      const offer = await pc.createOffer();
      await pc.setLocalDescription({ type: "offer", sdp: alignPayloadTypes(alignHeaderExtensions(offer.sdp)) });
      await gathered(pc);
      const answer = await this.request({ type: "offer", sdp: pc.localDescription.sdp }, "answer");
      if (pc !== this.pc) return;
      await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
      const mine = new Set(Object.values(this.senders).map((t) => t.mid));
      this.sendCodecs = firstPayloadTypes(answer.sdp, mine);
      this.mediaAttempt = 0;
      answered();
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
    await pc.setRemoteDescription({ type: "offer", sdp: keepSendCodecs(sdp, this.sendCodecs || new Map()) });
    await pc.setLocalDescription();
    await gathered(pc);
    if (pc === this.pc) this.send({ type: "answer", sdp: pc.localDescription.sdp });
  }

  setState(state) { this.state = state; this.log("pc " + state); this.emit("state", { state }); }

  /** Send another video source (a screen share, another camera) without renegotiating. */
  async replaceVideo(track) {
    if (!this.senders || !this.senders.high) return;
    await this.senders.high.sender.replaceTrack(track);
    if (this.senders.low) {
      const low = track ? track.clone() : null;
      await this.senders.low.sender.replaceTrack(low);
      if (this.lowTrack) this.lowTrack.stop();
      this.lowTrack = low;
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

  /** Leave the room (the server answers `left` and closes the socket). */
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

  close() {
    this.closed = true;
    clearInterval(this.pinger);
    clearTimeout(this.retrying);
    if (this.pc) { this.pc.close(); this.pc = null; }
    if (this.lowTrack) { this.lowTrack.stop(); this.lowTrack = null; }
    if (this.ws && this.ws.readyState <= 1) this.ws.close();
  }
}

// aiortc keeps ONE header-extension map per DTLS transport and offers its own ids (mid 1,
// ssrc-audio-level 2, abs-send-time 3) in server offers. With Chrome's default ids in our
// offer the two collide once the SFU sends to us (a received packet's abs-send-time gets
// parsed as an audio level and the SFU's receive loop fails), so our offer uses aiortc's ids.
export const SERVER_EXTENSION_IDS = {
  "urn:ietf:params:rtp-hdrext:sdes:mid": 1,
  "urn:ietf:params:rtp-hdrext:ssrc-audio-level": 2,
  "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time": 3,
};

export function alignHeaderExtensions(sdp) {
  const lines = sdp.split("\r\n");
  const ids = new Map(Object.entries(SERVER_EXTENSION_IDS));
  const taken = new Set(ids.values());
  const extmap = /^a=extmap:(\d+)(\/\w+)? (\S+)(.*)$/;
  for (const line of lines) {
    const m = extmap.exec(line);
    if (!m || ids.has(m[3])) continue;
    let id = Number(m[1]);
    if (taken.has(id)) { id = 1; while (taken.has(id)) id += 1; }
    ids.set(m[3], id);
    taken.add(id);
  }
  return lines.map((line) => {
    const m = extmap.exec(line);
    return m ? `a=extmap:${ids.get(m[3])}${m[2] || ""} ${m[3]}${m[4]}` : line;
  }).join("\r\n");
}

// The codec each of our send m-lines negotiated first (mid -> payload type).
export function firstPayloadTypes(sdp, mids) {
  const out = new Map();
  for (const section of sdp.split(/\r\n(?=m=)/).slice(1)) {
    const mid = (/\r\na=mid:(\S+)/.exec(section) || [])[1];
    const pts = section.split("\r\n")[0].split(" ").slice(3);
    if (mid !== undefined && mids.has(mid) && pts.length) out.set(mid, pts[0]);
  }
  return out;
}

// Chrome, as the answerer, sends with the first codec of the OFFER's list; aiortc re-offers our
// send m-lines in its default order (VP8 first), which would switch our encoder to VP8 in the
// middle of the lesson while the SFU's consumers stay on H264. Keep our negotiated codec first.
export function keepSendCodecs(sdp, firstPt) {
  if (!firstPt.size) return sdp;
  return sdp.split(/\r\n(?=m=)/).map((section) => {
    const mid = (/\r\na=mid:(\S+)/.exec(section) || [])[1];
    const pt = firstPt.get(mid);
    if (!section.startsWith("m=") || pt === undefined) return section;
    const lines = section.split("\r\n");
    const head = lines[0].split(" ");
    const pts = head.slice(3);
    if (!pts.includes(pt)) return section;
    const rtx = pts.filter((p) => lines.includes(`a=fmtp:${p} apt=${pt}`));
    const order = [pt, ...rtx, ...pts.filter((p) => p !== pt && !rtx.includes(p))];
    lines[0] = [...head.slice(0, 3), ...order].join(" ");
    return lines.join("\r\n");
  }).join("\r\n");
}

// Offer only what the SFU forwards: H264 (packetization-mode 1, baseline profiles), VP8 and
// their RTX; Opus for audio.
function preferH264(transceiver) {
  if (!RTCRtpSender.getCapabilities || !transceiver.setCodecPreferences) return;
  const codecs = RTCRtpSender.getCapabilities("video").codecs;
  const profile = (c) => (/profile-level-id=([0-9a-f]{6})/i.exec(c.sdpFmtpLine || "") || [])[1];
  const rank = (c) => {
    if (c.mimeType === "video/H264" && /packetization-mode=1/.test(c.sdpFmtpLine || "")) {
      const p = (profile(c) || "").toLowerCase();
      return p === "42001f" ? 0 : p === "42e01f" ? 1 : 9;
    }
    return c.mimeType === "video/VP8" ? 2 : c.mimeType === "video/rtx" ? 3 : 9;
  };
  const chosen = [...codecs].filter((c) => rank(c) < 9).sort((a, b) => rank(a) - rank(b));
  transceiver.setCodecPreferences(chosen.length ? chosen : codecs);
}

function preferOpus(transceiver) {
  if (!RTCRtpSender.getCapabilities || !transceiver.setCodecPreferences) return;
  const opus = RTCRtpSender.getCapabilities("audio").codecs.filter((c) => c.mimeType === "audio/opus");
  if (opus.length) transceiver.setCodecPreferences(opus);
}

// aiortc re-offers the publisher's own m-lines with ITS payload-type numbers (opus 96, VP8 97,
// H264 42001f 99, H264 42e01f 101, each RTX one above); Chrome then switches to them and the
// SFU's producers stop matching what arrives. So our offer uses those numbers from the start.
export function alignPayloadTypes(sdp) {
  const wanted = (name, fmtp) => {
    const n = name.toLowerCase();
    if (n === "opus") return 96;
    if (n === "vp8") return 97;
    if (n === "h264" && /packetization-mode=1/.test(fmtp)) {
      const p = ((/profile-level-id=([0-9a-f]{6})/i.exec(fmtp) || [])[1] || "").toLowerCase();
      if (p === "42001f") return 99;
      if (p === "42e01f") return 101;
    }
    return null;
  };
  const sections = sdp.split(/\r\n(?=m=)/);
  return sections.map((section) => {
    if (!section.startsWith("m=")) return section;
    const lines = section.split("\r\n");
    const rtpmap = new Map(), fmtp = new Map();
    for (const line of lines) {
      let m = /^a=rtpmap:(\d+) ([^/]+)\//.exec(line);
      if (m) rtpmap.set(m[1], m[2]);
      m = /^a=fmtp:(\d+) (.*)$/.exec(line);
      if (m) fmtp.set(m[1], m[2]);
    }
    const map = new Map();
    const used = new Set();
    for (const [pt, name] of rtpmap) {
      const w = wanted(name, fmtp.get(pt) || "");
      if (w !== null && !used.has(w)) { map.set(pt, String(w)); used.add(w); }
    }
    for (const [pt, name] of rtpmap) { // rtx follows its codec
      if (name.toLowerCase() !== "rtx") continue;
      const apt = (/apt=(\d+)/.exec(fmtp.get(pt) || "") || [])[1];
      const target = apt && map.get(apt) ? Number(map.get(apt)) + 1 : null;
      if (target !== null && !used.has(target)) { map.set(pt, String(target)); used.add(target); }
    }
    let free = 103;
    for (const pt of rtpmap.keys()) {
      if (map.has(pt)) continue;
      if (!used.has(Number(pt)) && !(Number(pt) >= 96 && Number(pt) <= 102)) { map.set(pt, pt); used.add(Number(pt)); continue; }
      while (used.has(free) || [...rtpmap.keys()].includes(String(free))) free += 1;
      map.set(pt, String(free)); used.add(free);
    }
    const re = (pt) => map.get(pt) || pt;
    return lines.map((line) => {
      let m = /^(m=\S+ \S+ \S+ )(.*)$/.exec(line);
      if (m && line === lines[0]) return m[1] + m[2].split(" ").map(re).join(" ");
      m = /^a=(rtpmap|fmtp|rtcp-fb):(\d+)(.*)$/.exec(line);
      if (m) {
        const rest = m[1] === "fmtp" ? m[3].replace(/apt=(\d+)/, (_, a) => "apt=" + re(a)) : m[3];
        return `a=${m[1]}:${re(m[2])}${rest}`;
      }
      return line;
    }).join("\r\n");
  }).join("\r\n");
}

function gathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((ok) => {
    const done = () => { if (pc.iceGatheringState === "complete") { pc.removeEventListener("icegatheringstatechange", done); ok(); } };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(ok, 3000); // send what we have
  });
}

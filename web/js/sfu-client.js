// Minimal Sanke SFU client: join over the signaling WebSocket, publish camera+mic (optional),
// receive what the SFU forwards. The client offers first; later the SFU renegotiates with
// server offers, which are applied only once our own offer is answered.
export class SfuClient {
  constructor({ wsUrl, token, publish = false, onTrack = () => {}, log = () => {} }) {
    Object.assign(this, { wsUrl, token, publish, onTrack, log });
    this.owners = new Map(); // remote track id -> participant id (from "tracks" messages)
    this.answered = null;
    this.chain = Promise.resolve(); // server offers, one at a time
    this.state = "new";
  }

  async start() {
    this.ws = new WebSocket(this.wsUrl);
    await new Promise((ok, fail) => { this.ws.onopen = ok; this.ws.onerror = fail; });
    this.ws.onmessage = (e) => this.handle(JSON.parse(e.data));
    const joined = new Promise((ok, fail) => { this.onJoined = ok; this.onError = fail; });
    this.send({ type: "join", token: this.token });
    const info = await joined;
    this.participantId = info.participant_id;
    const iceServers = (info.ice_servers || []).map((s) => ({ urls: s.urls, username: s.username, credential: s.credential }));
    this.pc = new RTCPeerConnection({ iceServers });
    this.pc.ontrack = (e) => this.onTrack(e, this.owners.get(e.track.id));
    this.pc.onconnectionstatechange = () => { this.state = this.pc.connectionState; this.log("pc " + this.state); };
    if (this.publish) {
      this.stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 360 } });
      for (const track of this.stream.getTracks()) {
        const t = this.pc.addTransceiver(track, { direction: "sendonly" });
        if (track.kind === "video") preferH264(t);
      }
    }
    let answered;
    this.answered = new Promise((ok) => { answered = ok; });
    await this.pc.setLocalDescription();
    await gathered(this.pc);
    const answer = await this.request({ type: "offer", sdp: this.pc.localDescription.sdp }, "answer");
    await this.pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
    answered();
  }

  send(message) { this.ws.send(JSON.stringify(message)); }

  request(message, replyType) {
    const rid = Math.random().toString(36).slice(2);
    return new Promise((ok, fail) => {
      this.pending = this.pending || new Map();
      this.pending.set(rid, { ok, fail, replyType });
      this.send({ ...message, rid });
    });
  }

  handle(msg) {
    const waiting = msg.rid && this.pending && this.pending.get(msg.rid);
    if (waiting) {
      this.pending.delete(msg.rid);
      return msg.type === "error" ? waiting.fail(new Error(msg.message)) : waiting.ok(msg);
    }
    switch (msg.type) {
      case "joined": return this.onJoined(msg);
      case "error": this.log("error " + msg.code + ": " + msg.message); if (!this.participantId) this.onError(msg); return;
      case "tracks": for (const t of msg.tracks) this.owners.set(t.track_id, t.participant_id); return;
      case "offer": this.chain = this.chain.then(() => this.applyServerOffer(msg.sdp)).catch((e) => this.log("renegotiation failed: " + e)); return;
      default: this.log(msg.type);
    }
  }

  async applyServerOffer(sdp) {
    await this.answered; // a server offer may overtake the answer to our own offer
    await this.pc.setRemoteDescription({ type: "offer", sdp });
    await this.pc.setLocalDescription();
    await gathered(this.pc);
    this.send({ type: "answer", sdp: this.pc.localDescription.sdp });
  }

  async stats() {
    const out = { inboundVideo: [], inboundAudio: [], outbound: [] };
    (await this.pc.getStats()).forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "video") out.inboundVideo.push({ framesDecoded: s.framesDecoded, codecId: s.codecId, bytes: s.bytesReceived });
      if (s.type === "inbound-rtp" && s.kind === "audio") out.inboundAudio.push({ packets: s.packetsReceived, bytes: s.bytesReceived, samples: s.totalSamplesReceived });
      if (s.type === "outbound-rtp") out.outbound.push({ kind: s.kind, packets: s.packetsSent });
    });
    return out;
  }

  close() { if (this.pc) this.pc.close(); if (this.ws) this.ws.close(); }
}

function preferH264(transceiver) {
  if (!RTCRtpSender.getCapabilities || !transceiver.setCodecPreferences) return;
  const codecs = RTCRtpSender.getCapabilities("video").codecs;
  const rank = (c) => (c.mimeType === "video/H264" && /packetization-mode=1/.test(c.sdpFmtpLine || "") ? 0 : c.mimeType === "video/VP8" ? 1 : 2);
  transceiver.setCodecPreferences([...codecs].sort((a, b) => rank(a) - rank(b)));
}

function gathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((ok) => {
    const done = () => { if (pc.iceGatheringState === "complete") { pc.removeEventListener("icegatheringstatechange", done); ok(); } };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(ok, 3000); // send what we have
  });
}

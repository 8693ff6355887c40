// Connection quality from RTCPeerConnection.getStats(): packet loss, round-trip time, jitter
// and frame rate, turned into 1–5 bars. (A server-side "quality" message is coming; until
// then every page computes this itself.)
import { h } from "./dom.js";
import { t } from "./i18n.js";

/** 5 = excellent … 1 = unusable. Inputs may be undefined (unknown → no penalty). */
export function score({ lossPct, rttMs, jitterMs, fps, expectVideo = false } = {}) {
  let level = 5;
  if (lossPct !== undefined) level -= lossPct > 15 ? 4 : lossPct > 8 ? 3 : lossPct > 3 ? 2 : lossPct > 1 ? 1 : 0;
  if (rttMs !== undefined) level -= rttMs > 400 ? 2 : rttMs > 200 ? 1 : 0;
  if (jitterMs !== undefined) level -= jitterMs > 60 ? 2 : jitterMs > 30 ? 1 : 0;
  if (expectVideo && fps !== undefined) level -= fps < 1 ? 4 : fps < 8 ? 2 : fps < 15 ? 1 : 0;
  return Math.max(1, Math.min(5, level));
}

/**
 * Samples a peer connection; keeps the previous counters to compute loss over the last
 * interval. sample() → { uplink, byTrack: Map(trackId → {level, lossPct, jitterMs, fps, framesDecoded}) , rttMs }
 */
export class QualityMeter {
  constructor() { this.prev = new Map(); }

  async sample(pc) {
    if (!pc || pc.connectionState === "closed") return { uplink: undefined, byTrack: new Map(), rttMs: undefined };
    const report = await pc.getStats();
    let rttMs;
    const byTrack = new Map();
    const uplinkParts = [];
    let pairId; // the selected pair (several can be nominated; only it carries media)
    report.forEach((s) => { if (s.type === "transport" && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId; });
    report.forEach((s) => {
      const selected = pairId ? s.id === pairId : s.nominated && s.state === "succeeded";
      if (s.type === "candidate-pair" && selected && s.currentRoundTripTime !== undefined) {
        rttMs = s.currentRoundTripTime * 1000;
      }
    });
    report.forEach((s) => {
      if (s.type === "inbound-rtp") {
        const before = this.prev.get(s.id) || { packetsReceived: 0, packetsLost: 0 };
        const got = (s.packetsReceived || 0) - before.packetsReceived;
        const lost = Math.max(0, (s.packetsLost || 0) - before.packetsLost);
        this.prev.set(s.id, { packetsReceived: s.packetsReceived || 0, packetsLost: s.packetsLost || 0 });
        const lossPct = got + lost > 0 ? (100 * lost) / (got + lost) : undefined;
        const jitterMs = s.jitter !== undefined ? s.jitter * 1000 : undefined;
        const fps = s.kind === "video" ? (s.framesPerSecond || 0) : undefined;
        const entry = { kind: s.kind, lossPct, jitterMs, fps, framesDecoded: s.framesDecoded || 0,
          level: score({ lossPct, rttMs, jitterMs, fps, expectVideo: s.kind === "video" && got > 0 }) };
        if (got === 0 && s.kind === "video") entry.level = 1; // nothing arrived in the interval
        byTrack.set(s.trackIdentifier, entry);
      } else if (s.type === "remote-inbound-rtp") {
        const lossPct = s.fractionLost !== undefined ? s.fractionLost * 100 : undefined;
        uplinkParts.push(score({ lossPct, rttMs: s.roundTripTime !== undefined ? s.roundTripTime * 1000 : rttMs,
          jitterMs: s.jitter !== undefined ? s.jitter * 1000 : undefined }));
      }
    });
    const uplink = uplinkParts.length ? Math.min(...uplinkParts) : rttMs !== undefined ? score({ rttMs }) : undefined;
    return { uplink, byTrack, rttMs };
  }
}

/** The worst level of a set of tracks (a participant's audio + video). */
export function worst(levels) {
  const known = levels.filter((l) => l !== undefined);
  return known.length ? Math.min(...known) : undefined;
}

/** A 1–5 bar meter (role=img with a spoken label). update(el, level) re-renders it. */
export function meter(level) {
  const el = h("span", { class: "bars", role: "img" });
  for (let i = 1; i <= 5; i++) el.append(h("span", { class: "bar" })); // heights: sanke.css
  update(el, level);
  return el;
}

export function update(el, level) {
  el.dataset.level = level === undefined ? "0" : String(level);
  el.setAttribute("aria-label", level === undefined ? t("common.quality") + ": —" : t("common.qualityLevel", { n: level }));
  [...el.children].forEach((bar, i) => bar.classList.toggle("on", level !== undefined && i < level));
}

// Video tiles (a participant's video, name, quality, hand/stage/mute badges) and audio playback
// with a "click to enable sound" fallback when the browser blocks autoplay.
import { h } from "./dom.js";
import { t, onLang } from "./i18n.js";
import { meter, update } from "./quality.js";

const blocked = new Set();
let soundButton = null;

export function play(el) {
  const p = el.play();
  if (p && p.catch) p.catch((err) => { if (err && err.name === "NotAllowedError") { blocked.add(el); showSoundButton(); } });
}

function showSoundButton() {
  if (soundButton) return;
  soundButton = h("button", { type: "button", class: "primary sound-gate",
    onclick: () => { for (const el of blocked) el.play().catch(() => {}); blocked.clear(); soundButton.remove(); soundButton = null; } },
  t("common.enableSound"));
  document.body.append(soundButton);
}

export class Tile {
  /** controls: extra elements for the .controls row; audio: play received audio. */
  constructor({ id, name = "", audio = true, controls = [], label } = {}) {
    this.id = id;
    this.playAudio = audio;
    this.stream = new MediaStream();
    this.video = h("video", { autoplay: true, muted: true, playsInline: true });
    this.video.muted = true;
    this.audio = null;
    this.nameEl = h("span", { class: "name" }, name);
    this.handEl = h("span", { class: "hand-badge", hidden: true }, t("common.hand"));
    this.stageEl = h("span", { class: "badge stage-badge", hidden: true });
    this.mutedEl = h("span", { class: "badge muted-badge", hidden: true });
    this.bars = meter(undefined);
    this.el = h("section", { class: "tile", dataset: { participant: id }, "aria-label": label || name },
      h("div", { class: "video" }, this.video),
      h("div", { class: "caption" }, this.nameEl, this.handEl, this.stageEl, this.mutedEl, this.bars),
      controls.length ? h("div", { class: "controls" }, ...controls) : null);
    onLang(() => this.relabel());
    this.relabel();
  }

  relabel() {
    this.handEl.textContent = t("common.hand");
    this.stageEl.textContent = t("tile.onStage");
    this.mutedEl.textContent = t("tile.muted");
    update(this.bars, this.level);
  }

  addTrack(track) {
    for (const old of this.stream.getTracks().filter((x) => x.kind === track.kind)) this.stream.removeTrack(old);
    this.stream.addTrack(track);
    if (track.kind === "video") {
      this.video.srcObject = new MediaStream([track]);
      play(this.video);
    } else if (this.playAudio) {
      if (!this.audio) { this.audio = h("audio", { autoplay: true }); this.el.append(this.audio); }
      this.audio.srcObject = new MediaStream([track]);
      play(this.audio);
    }
  }

  removeTrack(track) {
    this.stream.removeTrack(track);
    if (track.kind === "video" && this.video.srcObject && this.video.srcObject.getVideoTracks()[0] === track) this.video.srcObject = null;
  }

  hasVideo() { return this.stream.getVideoTracks().length > 0; }
  trackIds() { return this.stream.getTracks().map((x) => x.id); }
  setName(name) { this.nameEl.textContent = name; this.el.setAttribute("aria-label", name); }
  setQuality(level) { this.level = level; update(this.bars, level); }
  setHand(raised) { this.handEl.hidden = !raised; this.el.classList.toggle("hand", raised); this.el.dataset.hand = raised ? "1" : "0"; }
  setStage(on) { this.stageEl.hidden = !on; this.el.classList.toggle("stage", on); this.el.dataset.stage = on ? "1" : "0"; }
  setMuted(muted) { this.mutedEl.hidden = !muted; this.el.dataset.muted = muted ? "1" : "0"; }
  remove() { this.el.remove(); for (const x of this.stream.getTracks()) this.stream.removeTrack(x); }
}

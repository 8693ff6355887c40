// Viewer: receive-only (名校网络课堂 / 名师课堂 audiences). The teacher full size, classrooms
// on stage beside it, a layer choice (auto / high / low / audio only) and connection quality.
// Live HLS (docs/hls.md) when the room's WebRTC seats are full, or by choice (the 低延迟/HLS
// button; ?hls=1 starts with it, ?player=hlsjs forces hls.js over the browser's own HLS).
import { $, api, param, wsUrl, say, takeSecret } from "./dom.js";
import { playHls } from "./hls-player.js";
import { register, t, apply, langButton, errorText } from "./i18n.js";
import { SfuClient } from "./sfu-client.js";
import { QualityMeter, meter, update as updateBars, worst } from "./quality.js";
import { Tile, play } from "./tiles.js";

register({
  zh: { "viewer.title": "三课 · 观看直播", "viewer.heading": "观看直播", "viewer.layer": "画质", "viewer.auto": "自动",
    "viewer.high": "高清", "viewer.low": "流畅", "viewer.audio": "仅音频", "viewer.waiting": "等待直播开始…",
    "viewer.teacherVideo": "主讲教师画面", "viewer.onStage": "台上的教室", "viewer.live": "直播中", "viewer.over": "直播已结束",
    "viewer.toHls": "切换到 HLS", "viewer.toRtc": "切换到低延迟", "viewer.hlsLive": "HLS 直播中",
    "viewer.hlsWaiting": "等待 HLS 直播…", "viewer.fullToHls": "课堂互动席位已满，已切换到 HLS 观看（延迟约数秒）。",
    "viewer.badgeHls": "HLS", "viewer.badgeRtc": "低延迟",
    "tile.onStage": "台上", "tile.muted": "已静音" },
  en: { "viewer.title": "Sanke · Watch live", "viewer.heading": "Watch live", "viewer.layer": "Quality", "viewer.auto": "Auto",
    "viewer.high": "High", "viewer.low": "Smooth", "viewer.audio": "Audio only", "viewer.waiting": "Waiting for the broadcast…",
    "viewer.teacherVideo": "Teacher video", "viewer.onStage": "Classrooms on stage", "viewer.live": "Live", "viewer.over": "The broadcast has ended",
    "viewer.toHls": "Switch to HLS", "viewer.toRtc": "Switch to low latency", "viewer.hlsLive": "Live (HLS)",
    "viewer.hlsWaiting": "Waiting for the HLS stream…", "viewer.fullToHls": "The room's interactive seats are full: watching over HLS (a few seconds behind).",
    "viewer.badgeHls": "HLS", "viewer.badgeRtc": "Low latency",
    "tile.onStage": "On stage", "tile.muted": "Muted" },
});

const token = takeSecret("token");
const ui = { tiles: new Map(), meter: new QualityMeter(), client: null, mode: "webrtc", player: null };
window.sanke = ui;
apply();
langButton($("#lang"));
const bars = meter(undefined);
$("#quality").append(bars);

function teacherId(client) { return [...client.participants.values()].find((p) => p.role === "teacher")?.id; }

async function main() {
  if (!token) { say($("#message"), t("common.noToken"), "bad"); return; }
  say($("#status"), t("common.connecting"), "warn");
  const client = new SfuClient({ wsUrl: wsUrl(), token, reconnect: true, log: (l) => console.debug(l) });
  ui.client = client;
  client.on("joined", (msg) => { $("#room").textContent = msg.room_id; say($("#status"), t("viewer.live"), "ok"); });
  client.on("track", ({ track, participantId }) => {
    const p = client.participants.get(participantId);
    if ((p && p.role === "teacher") || participantId === teacherId(client) || !p) {
      if (track.kind === "video") { const v = $("#teacher-video"); v.srcObject = new MediaStream([track]); play(v); $("#main-empty").hidden = true; }
      else { ui.audio = ui.audio || document.body.appendChild(document.createElement("audio")); ui.audio.srcObject = new MediaStream([track]); play(ui.audio); }
      return;
    }
    let tile = ui.tiles.get(participantId);
    if (!tile) { tile = new Tile({ id: participantId, name: p.name || p.classroom_id || participantId }); ui.tiles.set(participantId, tile); $("#side").append(tile.el); }
    tile.addTrack(track);
  });
  const drop = (id) => { const tile = ui.tiles.get(id); if (tile) { tile.remove(); ui.tiles.delete(id); } };
  client.on("participant_left", (msg) => drop(msg.participant_id));
  client.on("stage_changed", (msg) => { if (!msg.on_stage) drop(msg.participant_id); });
  client.on("reconnecting", () => say($("#status"), t("common.reconnecting"), "warn"));
  client.on("mediaerror", ({ error }) => say($("#message"), errorText(error), "warn"));
  client.on("state", ({ state }) => { if (state === "connected") say($("#message"), "", ""); });
  client.on("fatal", (err) => {
    if (err && err.code === "room_full") { startHls("full"); return; }
    say($("#status"), t("viewer.over"), ""); say($("#message"), errorText(err), "bad");
  });
  try { await client.start(); } catch (err) {
    if (err && err.code === "room_full") { startHls("full"); return; }
    say($("#status"), "", ""); say($("#message"), errorText(err), "bad");
  }
}

/** The room a token is for (its JWT payload's ``room``; the server checks the token). */
function roomOfToken(tok) {
  try {
    const part = tok.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part + "===".slice((part.length + 3) % 4))).room || null;
  } catch { return null; }
}

function showMode() {
  const hls = ui.mode === "hls";
  const button = $("#mode");
  button.dataset.i18n = hls ? "viewer.toRtc" : "viewer.toHls";
  button.textContent = t(button.dataset.i18n);
  button.setAttribute("aria-pressed", String(hls));
  $("#layer").disabled = hls;
  const badge = $("#mode-badge");
  badge.hidden = false;
  badge.dataset.i18n = hls ? "viewer.badgeHls" : "viewer.badgeRtc";
  badge.textContent = t(badge.dataset.i18n);
}

async function startHls(reason) {
  if (ui.client) { ui.client.close(); ui.client = null; }
  for (const tile of ui.tiles.values()) tile.remove();
  ui.tiles.clear();
  if (ui.audio) { ui.audio.srcObject = null; }
  ui.mode = "hls";
  showMode();
  if (reason === "full") say($("#message"), t("viewer.fullToHls"), "warn");
  const room = roomOfToken(token);
  const video = $("#teacher-video");
  video.muted = false;
  say($("#status"), t("viewer.hlsWaiting"), "warn");
  const generation = (ui.hlsGeneration = (ui.hlsGeneration || 0) + 1);
  while (ui.mode === "hls" && generation === ui.hlsGeneration) {
    let link;
    try { link = await api(`/api/v1/rooms/${encodeURIComponent(room || "")}/hls`, { token }); } catch (err) {
      say($("#message"), errorText(err), "bad");
      if (["room_closed", "room_not_found", "hls_unavailable", "wrong_room", "token_invalid", "token_expired"].includes(err.code)) return;
      await new Promise((ok) => setTimeout(ok, 3000));
      continue;
    }
    if (!link.live) { await new Promise((ok) => setTimeout(ok, 2000)); continue; }
    $("#room").textContent = link.room_id;
    ui.hlsUrl = link.url;
    ui.player = await playHls(video, link.url, {
      forceHlsJs: param("player") === "hlsjs",
      // a fatal error (the URL expired, the stream ended and a new one began): a fresh link
      onFatal: () => { if (generation === ui.hlsGeneration) { stopHls(); startHls("again"); } },
    });
    $("#main-empty").hidden = true;
    say($("#status"), t("viewer.hlsLive"), "ok");
    return;
  }
}

function stopHls() {
  if (ui.player) { ui.player.stop(); ui.player = null; }
}

$("#mode").addEventListener("click", () => {
  if (ui.mode === "hls") {
    ui.hlsGeneration = (ui.hlsGeneration || 0) + 1;
    stopHls();
    ui.mode = "webrtc";
    showMode();
    say($("#message"), "", "");
    main();
  } else {
    startHls("choice");
  }
});

$("#layer").addEventListener("change", () => { if (ui.client) ui.client.setLayer($("#layer").value); });
setInterval(async () => {
  if (ui.player) {
    const seconds = ui.player.latency();
    $("#teacher-video").dataset.latency = seconds === null ? "" : seconds.toFixed(2);
  }
  const client = ui.client;
  if (!client || !client.pc) return;
  const q = await ui.meter.sample(client.pc);
  const v = $("#teacher-video").srcObject;
  const id = v && v.getVideoTracks()[0]?.id;
  updateBars(bars, worst([q.byTrack.get(id)?.level, q.rttMs !== undefined && q.rttMs > 400 ? 3 : undefined]));
  $("#teacher-video").dataset.frames = String(q.byTrack.get(id)?.framesDecoded || 0);
  for (const tile of ui.tiles.values()) tile.setQuality(worst(tile.trackIds().map((x) => q.byTrack.get(x)?.level)));
}, 2000);
showMode();
if (param("hls") === "1") startHls("choice"); else main();

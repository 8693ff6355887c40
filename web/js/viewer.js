// Viewer: receive-only (名校网络课堂 / 名师课堂 audiences). The teacher full size, classrooms
// on stage beside it, a layer choice (auto / high / low / audio only) and connection quality.
import { $, wsUrl, say, takeSecret } from "./dom.js";
import { register, t, apply, langButton, errorText } from "./i18n.js";
import { SfuClient } from "./sfu-client.js";
import { QualityMeter, meter, update as updateBars, worst } from "./quality.js";
import { Tile, play } from "./tiles.js";

register({
  zh: { "viewer.title": "三课 · 观看直播", "viewer.heading": "观看直播", "viewer.layer": "画质", "viewer.auto": "自动",
    "viewer.high": "高清", "viewer.low": "流畅", "viewer.audio": "仅音频", "viewer.waiting": "等待直播开始…",
    "viewer.teacherVideo": "主讲教师画面", "viewer.onStage": "台上的教室", "viewer.live": "直播中", "viewer.over": "直播已结束",
    "tile.onStage": "台上", "tile.muted": "已静音" },
  en: { "viewer.title": "Sanke · Watch live", "viewer.heading": "Watch live", "viewer.layer": "Quality", "viewer.auto": "Auto",
    "viewer.high": "High", "viewer.low": "Smooth", "viewer.audio": "Audio only", "viewer.waiting": "Waiting for the broadcast…",
    "viewer.teacherVideo": "Teacher video", "viewer.onStage": "Classrooms on stage", "viewer.live": "Live", "viewer.over": "The broadcast has ended",
    "tile.onStage": "On stage", "tile.muted": "Muted" },
});

const token = takeSecret("token");
const ui = { tiles: new Map(), meter: new QualityMeter(), client: null };
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
  client.on("fatal", (err) => { say($("#status"), t("viewer.over"), ""); say($("#message"), errorText(err), "bad"); });
  try { await client.start(); } catch (err) { say($("#status"), "", ""); say($("#message"), errorText(err), "bad"); }
}

$("#layer").addEventListener("change", () => { if (ui.client) ui.client.setLayer($("#layer").value); });
setInterval(async () => {
  const client = ui.client;
  if (!client || !client.pc) return;
  const q = await ui.meter.sample(client.pc);
  const v = $("#teacher-video").srcObject;
  const id = v && v.getVideoTracks()[0]?.id;
  updateBars(bars, worst([q.byTrack.get(id)?.level, q.rttMs !== undefined && q.rttMs > 400 ? 3 : undefined]));
  $("#teacher-video").dataset.frames = String(q.byTrack.get(id)?.framesDecoded || 0);
  for (const tile of ui.tiles.values()) tile.setQuality(worst(tile.trackIds().map((x) => q.byTrack.get(x)?.level)));
}, 2000);
main();

// Teacher console: devices and preview, publish high + low layers, the wall of remote
// classrooms (video, name, quality, raised hand), stage / mute / mute all, screen share,
// end the lesson, lesson timer.
import { $, h, param, wsUrl, say, clock, takeSecret } from "./dom.js";
import { register, t, apply, langButton, onLang, errorText } from "./i18n.js";
import { SfuClient } from "./sfu-client.js";
import { QualityMeter, update as updateBars, meter, worst } from "./quality.js";
import { Tile } from "./tiles.js";

register({
  zh: {
    "teacher.title": "三课 · 主讲教师", "teacher.heading": "主讲教师控制台", "teacher.skip": "跳到远端教室",
    "teacher.timer": "上课时长", "teacher.uplink": "上行", "teacher.setup": "设备与上课", "teacher.preview": "本机画面预览",
    "teacher.camera": "摄像头", "teacher.picture": "画质", "teacher.picture720": "高清 720p",
    "teacher.picture1080": "超清 1080p（板书、课件，需上行 5 Mbps）", "teacher.mic": "麦克风", "teacher.start": "开始上课", "teacher.end": "结束课程",
    "teacher.share": "共享屏幕", "teacher.stopShare": "停止共享", "teacher.selfMute": "关闭我的麦克风",
    "teacher.muteAll": "全部静音", "teacher.unmuteAll": "全部取消静音", "teacher.wall": "远端教室",
    "teacher.noClassrooms": "还没有远端教室加入", "teacher.viewers": "观众 {n}", "teacher.live": "直播中", "teacher.sourceReconnecting": "主讲画面重连中…（教室摄像机或录播主机断开，正在重连；各教室已看到提示）", "teacher.sourceBack": "主讲画面已恢复",
    "teacher.ended": "本节课已结束。", "teacher.noCamera": "未检测到摄像头，请检查连接后刷新页面。",
    "teacher.noDevicePermission": "无法使用摄像头或麦克风：{message}", "teacher.starting": "正在进入课堂…",
    "teacher.stage": "上台", "teacher.stageLabel": "让 {name} 上台（全体可听见）", "teacher.mute": "静音",
    "teacher.muteLabel": "将 {name} 静音", "teacher.lowerHand": "放下手", "teacher.lowerHandLabel": "放下 {name} 的手",
    "teacher.handRaised": "{name} 举手了", "teacher.shareFailed": "无法共享屏幕：{message}", "teacher.noMic": "（无麦克风）",
    "teacher.stopRecording": "停止录制", "teacher.startRecording": "开始录制",
    "tile.onStage": "台上", "tile.muted": "已静音",
  },
  en: {
    "teacher.title": "Sanke · Teacher", "teacher.heading": "Teacher console", "teacher.skip": "Skip to remote classrooms",
    "teacher.timer": "Lesson time", "teacher.uplink": "Uplink", "teacher.setup": "Devices and lesson", "teacher.preview": "Camera preview",
    "teacher.camera": "Camera", "teacher.picture": "Picture", "teacher.picture720": "HD 720p",
    "teacher.picture1080": "Full HD 1080p (blackboards, courseware; needs 5 Mbps up)", "teacher.mic": "Microphone", "teacher.start": "Start lesson", "teacher.end": "End lesson",
    "teacher.share": "Share screen", "teacher.stopShare": "Stop sharing", "teacher.selfMute": "Mute my microphone",
    "teacher.muteAll": "Mute all", "teacher.unmuteAll": "Unmute all", "teacher.wall": "Remote classrooms",
    "teacher.noClassrooms": "No remote classroom has joined yet", "teacher.viewers": "Viewers {n}", "teacher.live": "Live", "teacher.sourceReconnecting": "Reconnecting to the teacher's camera… (the classroom camera or recorder dropped; the classrooms see this too)", "teacher.sourceBack": "The teacher's picture is back",
    "teacher.ended": "The lesson has ended.", "teacher.noCamera": "No camera found; check it and reload the page.",
    "teacher.noDevicePermission": "Cannot use the camera or microphone: {message}", "teacher.starting": "Joining the lesson…",
    "teacher.stage": "On stage", "teacher.stageLabel": "Put {name} on stage (heard by everyone)", "teacher.mute": "Mute",
    "teacher.muteLabel": "Mute {name}", "teacher.lowerHand": "Lower hand", "teacher.lowerHandLabel": "Lower {name}'s hand",
    "teacher.handRaised": "{name} raised a hand", "teacher.shareFailed": "Cannot share the screen: {message}", "teacher.noMic": "(no microphone)",
    "teacher.stopRecording": "Stop recording", "teacher.startRecording": "Start recording",
    "tile.onStage": "On stage", "tile.muted": "Muted",
  },
});

const token = takeSecret("token");
// The camera's capture size: 720p by default, 1080p for a blackboard or small print. The
// choice is kept on this machine (a classroom PC is one teacher's console).
const PICTURE_KEY = "sanke.teacher.picture";
const PICTURES = ["1280x720", "1920x1080"];
const stored = (() => { try { return localStorage.getItem(PICTURE_KEY); } catch { return null; } })();
const requested = [param("video"), stored].find((v) => v && /^\d{2,4}x\d{2,4}$/.test(v)) || PICTURES[0];
if (!PICTURES.includes(requested)) $("#picture").append(h("option", { value: requested }, requested));
$("#picture").value = requested;
const pictureSize = () => $("#picture").value.split("x").map(Number);
const ui = { tiles: new Map(), stream: null, screen: null, client: null, startedAt: null, meter: new QualityMeter(), serverQuality: new Map() };
window.sanke = ui;
const message = $("#message");

apply();
langButton($("#lang"));
$("#uplink").append(ui.uplinkBars = meter(undefined));

async function openDevices({ release = false } = {}) {
  const cam = $("#camera").value, mic = $("#mic").value;
  // A camera already open hands a second capture its current size: to change the size,
  // let go of it first (the classrooms see the last frame for a moment).
  if (release && ui.stream) {
    for (const tr of ui.stream.getVideoTracks()) tr.stop();
    if (ui.client) ui.client.releaseVideo();
  }
  const [vw, vh] = pictureSize();
  const constraints = {
    video: { width: vw, height: vh, ...(cam ? { deviceId: { exact: cam } } : {}) },
    audio: mic ? { deviceId: { exact: mic } } : true,
  };
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia(constraints);
  } catch (err) {
    if (err.name === "NotFoundError" || err.name === "OverconstrainedError") {
      say(message, t("teacher.noCamera"), "bad");
      try { stream = await navigator.mediaDevices.getUserMedia({ audio: true }); } catch { return null; }
    } else {
      say(message, t("teacher.noDevicePermission", { message: err.message }), "bad");
      return null;
    }
  }
  if (ui.stream) for (const tr of ui.stream.getTracks()) tr.stop();
  ui.stream = stream;
  $("#preview").srcObject = stream;
  applySelfMute();
  if (ui.client) {
    await ui.client.replaceVideo(stream.getVideoTracks()[0] || null);
    await ui.client.replaceAudio(stream.getAudioTracks()[0] || null);
  }
  return stream;
}

async function listDevices() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  for (const [select, kind] of [[$("#camera"), "videoinput"], [$("#mic"), "audioinput"]]) {
    const current = select.value;
    const list = devices.filter((d) => d.kind === kind);
    select.replaceChildren(...list.map((d, i) => h("option", { value: d.deviceId }, d.label || `${kind} ${i + 1}`)));
    if (!list.length) select.append(h("option", { value: "" }, t("teacher.noMic")));
    const inUse = ui.stream && ui.stream.getTracks().find((tr) => tr.kind === (kind === "videoinput" ? "video" : "audio"));
    const id = current || (inUse && inUse.getSettings().deviceId);
    if (id && list.some((d) => d.deviceId === id)) select.value = id;
  }
}

function applySelfMute() {
  const off = $("#selfmute").getAttribute("aria-pressed") === "true";
  if (ui.stream) for (const tr of ui.stream.getAudioTracks()) tr.enabled = !off;
}

// --- the wall ----------------------------------------------------------------------------

function tileFor(p) {
  let entry = ui.tiles.get(p.id);
  if (entry) return entry;
  const name = p.name || p.classroom_id || p.id;
  const stage = h("button", { type: "button", class: "stage-btn", "aria-pressed": "false" });
  const mute = h("button", { type: "button", class: "mute-btn", "aria-pressed": "false" });
  const lower = h("button", { type: "button", class: "lower-btn", hidden: true });
  const tile = new Tile({ id: p.id, name, controls: [stage, mute, lower] });
  entry = { tile, stage, mute, lower, info: p };
  const label = () => {
    stage.textContent = t("teacher.stage"); stage.setAttribute("aria-label", t("teacher.stageLabel", { name }));
    mute.textContent = t("teacher.mute"); mute.setAttribute("aria-label", t("teacher.muteLabel", { name }));
    lower.textContent = t("teacher.lowerHand"); lower.setAttribute("aria-label", t("teacher.lowerHandLabel", { name }));
  };
  label(); onLang(label);
  stage.addEventListener("click", () => ui.client.setStage(p.id, stage.getAttribute("aria-pressed") !== "true"));
  mute.addEventListener("click", () => ui.client.mute(p.id, mute.getAttribute("aria-pressed") !== "true"));
  lower.addEventListener("click", () => ui.client.lowerHand(p.id));
  ui.tiles.set(p.id, entry);
  const wall = $("#wall");
  const empty = wall.querySelector(".empty"); if (empty) empty.remove();
  wall.append(tile.el);
  refresh(p.id);
  return entry;
}

function refresh(id) {
  const entry = ui.tiles.get(id);
  const p = ui.client && ui.client.participants.get(id);
  if (!entry || !p) return;
  entry.tile.setHand(!!p.hand_raised);
  entry.tile.setStage(!!p.on_stage);
  entry.tile.setMuted(!!p.muted);
  entry.stage.setAttribute("aria-pressed", String(!!p.on_stage));
  entry.mute.setAttribute("aria-pressed", String(!!p.muted));
  entry.lower.hidden = !p.hand_raised;
}

function dropTile(id) {
  const entry = ui.tiles.get(id);
  if (!entry) return;
  entry.tile.remove();
  ui.tiles.delete(id);
  if (!ui.tiles.size) $("#wall").append(h("p", { class: "empty", "data-i18n": "teacher.noClassrooms" }, t("teacher.noClassrooms")));
}

function countViewers() {
  const n = [...ui.client.participants.values()].filter((p) => p.role === "viewer").length;
  $("#viewers").textContent = n ? t("teacher.viewers", { n }) : "";
}

// --- the recording -------------------------------------------------------------------------

// The badge while the lesson is recorded; the toggle only in a room whose kind is recorded.
function showRecording() {
  const rec = (ui.client && ui.client.recording) || { on: false, enabled: false };
  const live = !!ui.startedAt;
  $("#rec").hidden = !(live && rec.on);
  const toggle = $("#rectoggle");
  toggle.hidden = !(live && rec.enabled);
  toggle.disabled = !live;
  toggle.setAttribute("aria-pressed", String(rec.on));
  toggle.textContent = t(rec.on ? "teacher.stopRecording" : "teacher.startRecording");
}

// --- the lesson --------------------------------------------------------------------------

async function start() {
  if (!token) { say(message, t("common.noToken"), "bad"); return; }
  $("#start").disabled = true;
  say($("#status"), t("teacher.starting"), "warn");
  if (!ui.stream) await openDevices();
  const client = new SfuClient({ wsUrl: wsUrl(), token, stream: ui.stream, layers: true, keepResolution: true, reconnect: true, log: (l) => console.debug(l) });
  ui.client = client;
  client.on("joined", (msg) => {
    $("#room").textContent = msg.room_id;
    for (const p of msg.participants) if (p.role === "classroom") tileFor(p);
    for (const id of [...ui.tiles.keys()]) if (!client.participants.has(id)) dropTile(id);
    for (const id of ui.tiles.keys()) refresh(id);
    countViewers();
    say($("#status"), t("teacher.live"), "ok");
  });
  client.on("participant_joined", (msg) => { if (msg.participant.role === "classroom") tileFor(msg.participant); countViewers(); });
  client.on("participant_left", (msg) => { dropTile(msg.participant_id); countViewers(); });
  for (const type of ["hand_raised", "stage_changed", "muted"]) client.on(type, (msg) => refresh(msg.participant_id));
  client.on("hand_raised", (msg) => {
    const entry = ui.tiles.get(msg.participant_id);
    if (msg.raised && entry) say($("#status"), t("teacher.handRaised", { name: entry.info.name || entry.info.classroom_id || msg.participant_id }), "warn");
  });
  client.on("track", ({ track, participantId }) => {
    const p = client.participants.get(participantId);
    const entry = ui.tiles.get(participantId) || (p && p.role === "classroom" ? tileFor(p) : null);
    if (entry) entry.tile.addTrack(track);
  });
  client.on("trackended", ({ track, participantId }) => { const e = ui.tiles.get(participantId); if (e) e.tile.removeTrack(track); });
  // The SFU's own 1–5 score (loss, jitter, RTT, freezes as it sees them) for each classroom.
  client.on("quality", (msg) => ui.serverQuality.set(msg.participant_id, msg));
  client.on("recording", showRecording);
  // the room's camera or 录播 host (its hardware source) dropped and is reconnecting
  client.on("source_state", (msg) => say(message, t(msg.state === "reconnecting" ? "teacher.sourceReconnecting" : "teacher.sourceBack"), msg.state === "reconnecting" ? "warn" : "ok"));
  client.on("joined", showRecording);
  client.on("error", (msg) => say(message, errorText(msg), "bad"));
  client.on("mediaerror", ({ error }) => say(message, errorText(error), "warn"));
  client.on("reconnecting", () => say($("#status"), t("common.reconnecting"), "warn"));
  client.on("fatal", (err) => { say(message, errorText(err), "bad"); stopped(); });
  try {
    await client.start();
  } catch (err) {
    say(message, errorText(err), "bad");
    $("#start").disabled = false;
    say($("#status"), "", "");
    return;
  }
  ui.startedAt = Date.now();
  for (const id of ["#end", "#share", "#muteall", "#unmuteall"]) $(id).disabled = false;
  showRecording();
  $("#start").hidden = true;
  $("#end").focus();
}

function stopped() {
  for (const id of ["#end", "#share", "#muteall", "#unmuteall"]) $(id).disabled = true;
  ui.startedAt = null;
  showRecording();
  say($("#status"), t("teacher.ended"), "");
  for (const id of [...ui.tiles.keys()]) dropTile(id);
}

// "End the lesson": the room closes for everyone and the lesson is recorded as held.
async function end() {
  if (!ui.client) return;
  await ui.client.endLesson();
  stopScreen();
  if (ui.stream) for (const tr of ui.stream.getTracks()) tr.stop();
  ui.stream = null;
  $("#preview").srcObject = null;
  stopped();
  say(message, t("teacher.ended"), "");
}

async function toggleShare() {
  if (ui.screen) { await stopScreen(); return; }
  try {
    // Courseware: up to 1080p, sharp text before motion (15 fps is plenty for slides).
    ui.screen = await navigator.mediaDevices.getDisplayMedia({ video: { width: { max: 1920 }, height: { max: 1080 }, frameRate: { max: 15 } }, audio: false });
  } catch (err) {
    say(message, t("teacher.shareFailed", { message: err.message }), "warn");
    return;
  }
  const track = ui.screen.getVideoTracks()[0];
  track.addEventListener("ended", () => stopScreen());
  await ui.client.startScreen(track); // its own source: classrooms show it, the camera goes on
  $("#preview").srcObject = ui.screen;
  $("#share").setAttribute("aria-pressed", "true");
  $("#share").textContent = t("teacher.stopShare");
}

async function stopScreen() {
  if (!ui.screen) return;
  for (const tr of ui.screen.getTracks()) tr.stop();
  ui.screen = null;
  $("#share").setAttribute("aria-pressed", "false");
  $("#share").textContent = t("teacher.share");
  if (ui.stream) $("#preview").srcObject = ui.stream;
  if (ui.client) await ui.client.stopScreen();
}

$("#start").addEventListener("click", start);
$("#end").addEventListener("click", end);
$("#share").addEventListener("click", toggleShare);
$("#rectoggle").addEventListener("click", () => {
  if (ui.client) ui.client.setRecording(!(ui.client.recording && ui.client.recording.on));
});
$("#muteall").addEventListener("click", () => ui.client.mute(null, true));
$("#unmuteall").addEventListener("click", () => ui.client.mute(null, false));
$("#selfmute").addEventListener("click", () => {
  const b = $("#selfmute");
  b.setAttribute("aria-pressed", String(b.getAttribute("aria-pressed") !== "true"));
  applySelfMute();
});
$("#camera").addEventListener("change", openDevices);
$("#picture").addEventListener("change", () => {
  try { localStorage.setItem(PICTURE_KEY, $("#picture").value); } catch { /* private mode */ }
  openDevices({ release: true });
});
$("#mic").addEventListener("change", openDevices);
onLang(() => { if (ui.client) countViewers(); showRecording(); });

setInterval(() => { $("#timer").textContent = clock(ui.startedAt ? (Date.now() - ui.startedAt) / 1000 : 0); }, 500);
setInterval(async () => {
  const client = ui.client;
  if (!client || !client.pc) return;
  const q = await ui.meter.sample(client.pc);
  updateBars(ui.uplinkBars, worst([q.uplink, ui.serverQuality.get(client.participantId)?.up]));
  for (const [id, entry] of ui.tiles) {
    const levels = entry.tile.trackIds().map((tid) => q.byTrack.get(tid)?.level);
    entry.tile.setQuality(worst([...levels, ui.serverQuality.get(id)?.score]));
    entry.tile.el.dataset.frames = String(entry.tile.trackIds().reduce((n, tid) => n + (q.byTrack.get(tid)?.framesDecoded || 0), 0));
    void id;
  }
}, 2000);

if (!token) say(message, t("common.noToken"), "bad");
else openDevices().then(listDevices).catch((err) => say(message, errorText(err), "bad"));

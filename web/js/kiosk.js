// Classroom kiosk: joins the current lesson by itself (device credential, or ?token= for a
// one-off link), rejoins after a drop, shows the teacher full screen (a screen share takes the
// main area), sends its own camera back, raises the assistant teacher's hand, shows the
// connection quality and a clear message for every failure. The last schedule is kept in
// localStorage so a link drop at the start of a lesson does not lose it.
import { $, h, param, takeSecret, wsUrl, say } from "./dom.js";
import { register, t, lang, locale, apply, langButton, onLang, errorText } from "./i18n.js";
import { SfuClient } from "./sfu-client.js";
import { QualityMeter, meter, update as updateBars, worst } from "./quality.js";
import { Tile, play } from "./tiles.js";

register({
  zh: {
    "kiosk.title": "三课 · 教室终端", connecting: "正在连接…", noCredential: "本终端尚未登记，请联系区县管理员。",
    idle: "当前没有课程", next: "下一节", live: "上课中", waiting: "等待主讲教师进入…",
    offline: "网络中断，正在重连…（已保存课表）", joining: "正在进入课堂…",
    revoked: "本终端已被停用，请联系区县管理员。", cancelled: "课程已取消", over: "本节课已结束",
    notStarted: "课程尚未开始，请稍候…", kicked: "已被移出课堂", "kiosk.waitingVideo": "等待主讲教师画面…",
    "kiosk.noCamera": "未检测到摄像头：主讲教师看不到本教室，但仍可正常听课。请检查摄像头连接。",
    "kiosk.noMic": "未检测到麦克风：主讲教师听不到本教室。", "kiosk.cameraDenied": "摄像头或麦克风无法使用：{message}",
    "kiosk.media": "音视频暂时无法连接，正在重试…", "kiosk.raise": "举手", "kiosk.lower": "放下手",
    "kiosk.raiseLabel": "举手（请主讲教师注意本教室）", "kiosk.lowerLabel": "放下手",
    "kiosk.self": "本教室画面", "kiosk.onStage": "本教室已上台，全体可以听到", "kiosk.muted": "已被主讲教师静音",
    "kiosk.screen": "屏幕共享", "kiosk.sourceReconnecting": "主讲画面重连中…", "kiosk.stageLabel": "课堂画面", "kiosk.upcoming": "接下来的课程", "tile.onStage": "台上", "tile.muted": "已静音",
  },
  en: {
    "kiosk.title": "Sanke · Classroom", connecting: "Connecting…", noCredential: "This device is not registered; ask the coordinator.",
    idle: "No lesson now", next: "Next", live: "Lesson in progress", waiting: "Waiting for the teacher…",
    offline: "Network down, reconnecting… (schedule kept)", joining: "Joining the lesson…",
    revoked: "This device has been revoked; ask the coordinator.", cancelled: "Lesson cancelled",
    over: "The lesson is over", notStarted: "The lesson has not started yet; please wait…", kicked: "Removed from the lesson",
    "kiosk.waitingVideo": "Waiting for the teacher's video…",
    "kiosk.noCamera": "No camera found: the teacher cannot see this classroom, but you can still follow the lesson. Check the camera.",
    "kiosk.noMic": "No microphone found: the teacher cannot hear this classroom.", "kiosk.cameraDenied": "Cannot use the camera or microphone: {message}",
    "kiosk.media": "Audio/video cannot connect right now; retrying…", "kiosk.raise": "Raise hand", "kiosk.lower": "Lower hand",
    "kiosk.raiseLabel": "Raise hand (ask the teacher's attention)", "kiosk.lowerLabel": "Lower hand",
    "kiosk.self": "This classroom", "kiosk.onStage": "This classroom is on stage: everyone hears it", "kiosk.muted": "Muted by the teacher",
    "kiosk.screen": "Screen share", "kiosk.sourceReconnecting": "Reconnecting to the teacher's camera…", "kiosk.stageLabel": "Lesson video", "kiosk.upcoming": "Upcoming lessons", "tile.onStage": "On stage", "tile.muted": "Muted",
  },
});

// Both leave the URL at once; the device credential lives in localStorage from then on (the
// classroom PC opens plain kiosk.html after a restart), a one-off token in this tab only.
const linked = param("credential");
const directToken = takeSecret("token");
const stored = takeSecret("credential", { storage: localStorage, key: "sanke.device" });
const credential = linked || (directToken ? null : stored);
const [vw, vh] = (param("video") || "640x360").split("x").map(Number);

const state = {
  schedule: directToken ? null : JSON.parse(localStorage.getItem("sanke.schedule") || "null"),
  client: null, joinedSession: null, online: true, backoff: 1000, teacherPresent: false, fatal: null,
  camera: undefined, cameraProblem: null, mediaProblem: null, tiles: new Map(), teacherId: null,
  sourcesDown: new Set(), // teacher sources (camera, encoder) whose picture is lost: reconnecting
  // … and back, until this kiosk decodes their picture again: id → {frames, at}
  sourcesResuming: new Map(),
  meter: new QualityMeter(), quality: undefined, retryTimer: null,
  get ws() { return this.client ? this.client.ws : null; },
};
window.sankeKiosk = state;

function fmt(ts) {
  return new Date(ts * 1000).toLocaleString(locale() === "zh-CN" ? "zh-CN" : "en-GB",
    { timeZone: "Asia/Shanghai", month: "numeric", day: "numeric", weekday: "short", hour: "2-digit", minute: "2-digit" });
}

const qualityBars = meter(undefined);
$("#quality").append(qualityBars);
const selfTile = new Tile({ id: "self", name: t("kiosk.self"), audio: false });
$("#self-box").append(selfTile.el);

function render() {
  document.body.classList.toggle("live", !!state.joinedSession);
  const status = $("#status");
  status.className = "";
  $("#stage").setAttribute("aria-label", t("kiosk.stageLabel"));
  $("#upcoming").setAttribute("aria-label", t("kiosk.upcoming"));
  selfTile.setName(t("kiosk.self"));
  const current = state.schedule && state.schedule.current;
  if (state.fatal) {
    status.textContent = t(state.fatal); status.className = "bad";
  } else if (state.joinedSession) {
    status.textContent = state.teacherPresent ? t("live") : t("waiting");
    status.className = state.teacherPresent ? "ok" : "warn";
  } else if (!state.online) {
    status.textContent = t("offline"); status.className = "warn";
  } else if (state.notStarted) {
    status.textContent = t("notStarted"); status.className = "warn";
  } else if (current || (directToken && !state.fatal)) {
    status.textContent = t("joining");
  } else {
    status.textContent = t("idle");
  }
  $("#lesson").textContent = current ? `${current.subject} · ${current.teacher}` : "";
  $("#detail").textContent = current ? `${fmt(current.starts_at)} – ${fmt(current.ends_at)}` : "";
  $("#upcoming").replaceChildren(...((state.schedule && state.schedule.upcoming) || []).slice(0, 4).map((u) =>
    h("li", {}, `${t("next")}: ${fmt(u.starts_at)} ${u.subject} · ${u.teacher}` + (u.state === "cancelled" ? ` (${t("cancelled")})` : ""))));
  const me = state.client && state.client.participants.get(state.client.participantId);
  const hand = $("#hand");
  const raised = !!(me && me.hand_raised);
  hand.setAttribute("aria-pressed", String(raised));
  hand.textContent = raised ? t("kiosk.lower") : t("kiosk.raise");
  hand.setAttribute("aria-label", raised ? t("kiosk.lowerLabel") : t("kiosk.raiseLabel"));
  $("#mine").textContent = [me && me.on_stage ? t("kiosk.onStage") : "", me && me.muted ? t("kiosk.muted") : ""].filter(Boolean).join(" · ");
  const problems = [state.cameraProblem, state.mediaProblem].filter(Boolean);
  say($("#notice"), state.joinedSession ? problems.map((p) => p.text).join(" ") : "", problems.length ? "warn" : "");
  updateBars(qualityBars, state.joinedSession ? state.quality : undefined);
  // people in the room should know the lesson is recorded
  // the main picture's hardware source reconnects (or, with no picture yet, any teacher source)
  const owner = $("#teacher-video").dataset.owner;
  const waiting = (id) => state.sourcesDown.has(id) || state.sourcesResuming.has(id);
  const down = state.joinedSession && (owner ? waiting(owner) : state.sourcesDown.size > 0);
  $("#source-reconnecting").hidden = !down;
  $("#rec").hidden = !(state.joinedSession && state.client && state.client.recording && state.client.recording.on);
}

async function api(path, method = "GET") {
  let reply;
  try { reply = await fetch(path, { method, headers: { Authorization: `Bearer ${credential}` } }); } catch (e) {
    const err = new Error(String(e)); err.status = 0; throw err;
  }
  const body = await reply.json().catch(() => ({}));
  if (!reply.ok) { const err = new Error(body.error?.message || reply.statusText); err.code = body.error?.code; err.status = reply.status; throw err; }
  return body;
}

async function refresh() {
  if (directToken) { maybeJoin(); return; }
  try {
    state.schedule = await api("/api/v1/device/schedule");
    localStorage.setItem("sanke.schedule", JSON.stringify(state.schedule));
    state.online = true;
  } catch (err) {
    if (err.status === 403) state.fatal = "revoked";
    else if (err.status === 401) state.fatal = "noCredential";
    else state.online = false;
  }
  render();
  maybeJoin();
}

async function camera() {
  if (state.camera !== undefined) return state.camera;
  try {
    state.camera = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: vw, height: vh } });
  } catch (err) {
    state.camera = null;
    if (err.name === "NotFoundError" || err.name === "OverconstrainedError") {
      state.cameraProblem = { text: t("kiosk.noCamera"), level: "warn", key: "kiosk.noCamera" };
      try { state.camera = await navigator.mediaDevices.getUserMedia({ audio: true }); } catch {
        try { state.camera = await navigator.mediaDevices.getUserMedia({ video: { width: vw, height: vh } });
          state.cameraProblem = { text: t("kiosk.noMic"), level: "warn", key: "kiosk.noMic" }; } catch { /* receive only */ }
      }
    } else {
      state.cameraProblem = { text: t("kiosk.cameraDenied", { message: err.message }), level: "warn" };
    }
  }
  if (state.camera && state.camera.getVideoTracks().length) selfTile.addTrack(state.camera.getVideoTracks()[0]);
  return state.camera;
}

async function maybeJoin() {
  if (state.client || state.fatal || state.joining) return;
  let token = directToken, session = null;
  state.joining = true;
  try {
    if (!directToken) {
      const current = state.schedule && state.schedule.current;
      if (!current || Date.now() / 1000 < current.opens_at) return;
      try {
        const join = await api("/api/v1/device/join", "POST");
        token = join.token; session = join.session;
      } catch (err) {
        if (err.code === "lesson_not_open") state.notStarted = true;
        else if (err.status >= 500 || !err.status) state.online = false;
        render();
        return;
      }
    }
    await connect(token, session);
  } finally {
    state.joining = false;
  }
}

async function connect(token, session) {
  const stream = await camera();
  const client = new SfuClient({ wsUrl: wsUrl(), token, stream, layers: true, log: (l) => console.debug(l) });
  state.client = client;
  client.on("joined", (msg) => {
    state.joinedSession = session ? session.id : msg.room_id;
    state.backoff = 1000; state.online = true; state.notStarted = false;
    const teacher = msg.participants.find((p) => p.role === "teacher");
    state.teacherPresent = !!teacher; state.teacherId = teacher ? teacher.id : null;
  });
  client.on("participant_joined", (msg) => {
    if (msg.participant.role === "teacher") { state.teacherPresent = true; state.teacherId = msg.participant.id; }
  });
  client.on("participant_left", (msg) => {
    // Two teachers (a 录播 host and a teacher console): the one who stays is the teacher, and
    // its camera takes the main area if the one leaving had it.
    const main = $("#teacher-video");
    const hadMain = main.dataset.owner === msg.participant_id;
    if (hadMain) clearMain();
    if (msg.participant_id === state.teacherId || hadMain) {
      const other = [...client.participants.values()].find((p) => p.role === "teacher" && p.id !== client.participantId);
      state.teacherPresent = !!other; state.teacherId = other ? other.id : null;
      if (!other) clearMain();
      else if (hadMain) promoteCamera(other.id);
    }
    dropTile(msg.participant_id); dropTile(msg.participant_id + ":camera");
    state.sourcesDown.delete(msg.participant_id); state.sourcesResuming.delete(msg.participant_id);
  });
  client.on("stage_changed", (msg) => { if (msg.participant_id !== client.participantId && !msg.on_stage) dropTile(msg.participant_id); });
  client.on("lesson_changed", () => refresh());
  client.on("quality", (msg) => { if (msg.participant_id === client.participantId) state.serverQuality = msg; });
  client.on("room_closed", () => { state.fatal = "over"; });
  client.on("source_state", (msg) => {
    const id = msg.participant_id;
    if (msg.state === "reconnecting") { state.sourcesDown.add(id); state.sourcesResuming.delete(id); }
    else if (state.sourcesDown.delete(id)) {
      // the SFU has its picture again; the text stays until this kiosk decodes it (next IDR)
      const entry = { frames: Infinity, at: Date.now() };
      state.sourcesResuming.set(id, entry);
      mainFrames().then((n) => { entry.frames = n; checkResuming(); });
    }
  });
  client.on("track", (tr) => onTrack(client, tr));
  client.on("trackended", ({ track, participantId }) => {
    const tile = state.tiles.get(participantId);
    if (tile) tile.removeTrack(track);
    const main = $("#teacher-video");
    if (main.srcObject && main.srcObject.getTracks()[0] === track) {
      clearMain();
      // the screen share ended: the teacher's camera goes back to the main area
      promoteCamera(participantId);
    }
  });
  client.on("mediaerror", () => { state.mediaProblem = { text: t("kiosk.media"), level: "warn", key: "kiosk.media" }; render(); });
  client.on("state", ({ state: s }) => { if (s === "connected") { state.mediaProblem = null; render(); } });
  client.on("fatal", (err) => {
    state.fatal = err.code === "kicked" ? "kicked" : err.code === "token_not_yet_valid" || err.code === "lesson_not_open" ? null : "over";
    if (!state.fatal) state.notStarted = true;
  });
  client.on("message", () => render());
  client.on("closed", () => closed(client));
  try {
    await client.start();
  } catch (err) {
    if (state.client === client) state.client = null;
    if (err.code === "token_not_yet_valid" || err.code === "lesson_not_open") { state.notStarted = true; retry(30000); }
    else if (err.code === "token_expired" || err.code === "token_revoked" || err.code === "room_closed") { state.fatal = "over"; }
    else if (err.code === "kicked") { state.fatal = "kicked"; }
    else if (err.code === "network") { state.online = false; retry(); }
    else { say($("#notice"), errorText(err), "bad"); retry(); }
    render();
    return;
  }
  render();
}

function closed(client) {
  if (state.client !== client) return;
  state.client = null; state.joinedSession = null; state.teacherPresent = false; state.teacherId = null;
  state.sourcesDown.clear(); state.sourcesResuming.clear();
  clearMain();
  for (const id of [...state.tiles.keys()]) dropTile(id);
  render();
  if (state.fatal) return;
  retry(); // rejoin after a drop, backing off up to 30 s
}

function retry(delay) {
  clearTimeout(state.retryTimer);
  state.retryTimer = setTimeout(() => refresh(), delay || state.backoff);
  state.backoff = Math.min(state.backoff * 2, 30000);
}

function onTrack(client, { track, participantId, source }) {
  const p = client.participants.get(participantId);
  const fromTeacher = (p && p.role === "teacher") || participantId === state.teacherId;
  if (fromTeacher && track.kind === "video") {
    const main = $("#teacher-video");
    const current = main.srcObject && main.srcObject.getVideoTracks()[0];
    const currentIsScreen = main.dataset.source === "screen";
    // Classroom hardware (a 录播 host over WHIP) is the lesson's picture: a teacher console's
    // camera beside it goes to a side tile, and the hardware's camera takes the main area back.
    const ingest = !!(p && p.publish_only);
    const mainIsIngest = main.dataset.ingest === "true" && !!current && current.readyState === "live";
    if (source === "camera" && !currentIsScreen && mainIsIngest && !ingest) {
      sideTile(participantId + ":camera", p ? p.name : "").addTrack(track);
    } else if (source === "camera" && !currentIsScreen && current && ingest && main.dataset.ingest !== "true") {
      sideTile(main.dataset.owner + ":camera", "").addTrack(current);
      main.srcObject = new MediaStream([track]); main.dataset.source = source; play(main);
    } else if (source === "screen" || !current || !currentIsScreen) {
      if (current && source === "screen") sideTile(participantId + ":camera", p ? p.name : "").addTrack(current);
      main.srcObject = new MediaStream([track]); main.dataset.source = source; play(main);
    } else {
      sideTile(participantId + ":camera", p ? p.name : "").addTrack(track);
    }
    if (main.srcObject && main.srcObject.getVideoTracks()[0] === track) {
      main.dataset.ingest = String(ingest); main.dataset.owner = participantId;
    }
    $("#main-empty").hidden = true;
  } else if (fromTeacher) {
    let audio = $("#teacher-audio");
    if (!audio) { audio = h("audio", { id: "teacher-audio", autoplay: true }); document.body.append(audio); }
    audio.srcObject = new MediaStream([track]); play(audio);
  } else {
    sideTile(participantId, p ? p.name || p.classroom_id : "").addTrack(track);
  }
}

// A teacher's camera waiting in a side tile goes to the main area.
function promoteCamera(participantId) {
  const main = $("#teacher-video");
  const camera = state.tiles.get(participantId + ":camera");
  const video = camera && camera.stream.getVideoTracks()[0];
  if (video && video.readyState === "live") {
    dropTile(participantId + ":camera");
    main.srcObject = new MediaStream([video]); main.dataset.source = "camera"; play(main);
    const p = state.client && state.client.participants.get(participantId);
    main.dataset.ingest = String(!!(p && p.publish_only)); main.dataset.owner = participantId;
    $("#main-empty").hidden = true;
  }
}

// A source that is back clears its "reconnecting" once the main picture's frames advance
// (or after 15 s, whatever the picture does: the SFU said it is back).
async function mainFrames() {
  const client = state.client;
  const main = $("#teacher-video").srcObject;
  const trackId = main && main.getVideoTracks()[0]?.id;
  if (!client || !client.pc || !trackId) return 0;
  let frames = 0;
  (await client.pc.getStats()).forEach((r) => {
    if (r.type === "inbound-rtp" && r.kind === "video" && r.trackIdentifier === trackId) frames = r.framesDecoded || 0;
  });
  return frames;
}

async function checkResuming() {
  if (!state.sourcesResuming.size) return;
  const frames = await mainFrames();
  for (const [id, r] of state.sourcesResuming) {
    if (frames > r.frames + 2 || Date.now() - r.at > 15000) state.sourcesResuming.delete(id);
  }
  render();
  if (state.sourcesResuming.size) setTimeout(checkResuming, 250);
}

function sideTile(id, name) {
  let tile = state.tiles.get(id);
  if (!tile) { tile = new Tile({ id, name }); state.tiles.set(id, tile); $("#side").append(tile.el); }
  return tile;
}

function dropTile(id) { const tile = state.tiles.get(id); if (tile) { tile.remove(); state.tiles.delete(id); } }

function clearMain() {
  const main = $("#teacher-video");
  main.srcObject = null; delete main.dataset.source; delete main.dataset.ingest; delete main.dataset.owner;
  $("#main-empty").hidden = false;
}

$("#hand").addEventListener("click", () => {
  const client = state.client;
  if (!client) return;
  const me = client.participants.get(client.participantId);
  if (me && me.hand_raised) client.lowerHand(); else client.raiseHand();
});

apply();
langButton($("#lang"));
onLang(() => {
  for (const p of [state.cameraProblem, state.mediaProblem]) if (p && p.key) p.text = t(p.key);
  render();
});
setInterval(async () => {
  const client = state.client;
  if (!client || !client.pc) return;
  const q = await state.meter.sample(client.pc);
  const main = $("#teacher-video").srcObject;
  const mainLevel = main ? q.byTrack.get(main.getVideoTracks()[0]?.id)?.level : undefined;
  const own = state.serverQuality && state.serverQuality.participant_id === client.participantId ? state.serverQuality : null;
  state.quality = worst([q.uplink, mainLevel, own?.score]);
  updateBars(qualityBars, state.quality);
  selfTile.setQuality(q.uplink);
  $("#teacher-video").dataset.frames = String(main ? q.byTrack.get(main.getVideoTracks()[0]?.id)?.framesDecoded || 0 : 0);
}, 2000);
window.addEventListener("online", refresh);
window.addEventListener("offline", () => { state.online = false; render(); });
void lang;
if (!credential && !directToken) { state.fatal = "noCredential"; render(); }
else { render(); refresh(); if (!directToken) setInterval(refresh, 30000); }

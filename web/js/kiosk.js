// Classroom kiosk: joins the current lesson by itself, rejoins after a drop, and shows the
// next lesson when idle. The last schedule is kept in localStorage so a link drop at the
// start of a lesson does not lose it.
const params = new URLSearchParams(location.search);
const credential = params.get("credential") || localStorage.getItem("sanke.device");
if (params.get("credential")) localStorage.setItem("sanke.device", params.get("credential"));

const TEXT = {
  zh: {
    connecting: "正在连接…", noCredential: "本终端尚未登记，请联系区县管理员。",
    idle: "当前没有课程", next: "下一节", live: "上课中", waiting: "等待主讲教师进入…",
    offline: "网络中断，正在重连…（已保存课表）", joining: "正在进入课堂…",
    revoked: "本终端已被停用，请联系区县管理员。", cancelled: "课程已取消", over: "本节课已结束",
    kicked: "已被移出课堂", lang: "English",
  },
  en: {
    connecting: "Connecting…", noCredential: "This device is not registered; ask the coordinator.",
    idle: "No lesson now", next: "Next", live: "Lesson in progress", waiting: "Waiting for the teacher…",
    offline: "Network down, reconnecting… (schedule kept)", joining: "Joining the lesson…",
    revoked: "This device has been revoked; ask the coordinator.", cancelled: "Lesson cancelled",
    over: "The lesson is over", kicked: "Removed from the lesson", lang: "中文",
  },
};
let lang = localStorage.getItem("sanke.lang") || "zh";
const t = (key) => TEXT[lang][key];
const $ = (id) => document.getElementById(id);
const state = { schedule: JSON.parse(localStorage.getItem("sanke.schedule") || "null"), ws: null,
  joinedSession: null, online: true, backoff: 1000, teacherPresent: false, fatal: null };

function fmt(ts) {
  return new Date(ts * 1000).toLocaleString(lang === "zh" ? "zh-CN" : "en-GB",
    { timeZone: "Asia/Shanghai", month: "numeric", day: "numeric", weekday: "short", hour: "2-digit", minute: "2-digit" });
}

function render() {
  $("lang").textContent = t("lang");
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  const status = $("status");
  status.className = "";
  if (state.fatal) { status.textContent = t(state.fatal); status.className = "bad"; return; }
  const s = state.schedule;
  const current = s && s.current;
  if (state.joinedSession) {
    status.textContent = state.teacherPresent ? t("live") : t("waiting");
    status.className = state.teacherPresent ? "ok" : "warn";
  } else if (!state.online) {
    status.textContent = t("offline"); status.className = "warn";
  } else if (current) {
    status.textContent = t("joining");
  } else {
    status.textContent = t("idle");
  }
  $("lesson").textContent = current ? `${current.subject} · ${current.teacher}` : "";
  $("detail").textContent = current ? `${fmt(current.starts_at)} – ${fmt(current.ends_at)}` : "";
  const list = $("upcoming");
  list.replaceChildren(...((s && s.upcoming) || []).slice(0, 4).map((u) => {
    const li = document.createElement("li");
    li.textContent = `${t("next")}: ${fmt(u.starts_at)} ${u.subject} · ${u.teacher}` +
      (u.state === "cancelled" ? ` (${t("cancelled")})` : "");
    return li;
  }));
}

async function api(path, method = "GET") {
  const reply = await fetch(path, { method, headers: { Authorization: `Bearer ${credential}` } });
  const body = await reply.json().catch(() => ({}));
  if (!reply.ok) { const err = new Error(body.error?.message || reply.statusText); err.code = body.error?.code; err.status = reply.status; throw err; }
  return body;
}

async function refresh() {
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

async function maybeJoin() {
  const current = state.schedule && state.schedule.current;
  if (!current || state.ws || state.fatal) return;
  if (Date.now() / 1000 < current.opens_at) return;
  let join;
  try { join = await api("/api/v1/device/join", "POST"); }
  catch (err) { if (err.status >= 500 || !err.status) state.online = false; render(); return; }
  connect(join);
}

function connect(join) {
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${join.ws_path}`);
  state.ws = ws;
  ws.onopen = () => ws.send(JSON.stringify({ type: "join", token: join.token }));
  ws.onmessage = (event) => {
    const msg = JSON.parse(event.data);
    if (msg.type === "joined") {
      state.joinedSession = join.session.id; state.backoff = 1000; state.online = true;
      state.teacherPresent = msg.participants.some((p) => p.role === "teacher");
    } else if (msg.type === "participant_joined" && msg.participant.role === "teacher") {
      state.teacherPresent = true;
    } else if (msg.type === "participant_left" && !state.teacherPresent) {
      // nothing: only the teacher's presence is shown
    } else if (msg.type === "lesson_changed") {
      refresh();
    } else if (msg.type === "room_closed") {
      state.joinedSession = null;
    }
    render();
    window.dispatchEvent(new CustomEvent("sanke:message", { detail: msg }));
  };
  ws.onclose = () => {
    state.ws = null; state.joinedSession = null; state.teacherPresent = false;
    render();
    // Rejoin after a drop, backing off up to 30 s.
    setTimeout(() => { refresh(); }, state.backoff);
    state.backoff = Math.min(state.backoff * 2, 30000);
  };
  const ping = setInterval(() => { if (ws.readyState === 1) ws.send(JSON.stringify({ type: "ping" })); else clearInterval(ping); }, 15000);
}

$("lang").addEventListener("click", () => { lang = lang === "zh" ? "en" : "zh"; localStorage.setItem("sanke.lang", lang); render(); });
window.addEventListener("online", refresh);
if (!credential) { state.fatal = "noCredential"; render(); }
else { render(); refresh(); setInterval(refresh, 30000); }
window.sankeKiosk = state;

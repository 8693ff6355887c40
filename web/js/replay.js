// Replay library: search recorded lessons (school, teacher, subject, grade, dates, type), a
// results list with paging, and a player with both tracks side by side — the teacher's camera
// (with the sound) and the screen share — on one lesson timeline: the camera's part leads, the
// screen's part covering the same moment follows it (re-seeked when it drifts), and a seek moves
// both. Parts of one lesson (a reconnect, a failover) play one after another. Calls
// /api/v1/replays with the token from ?token=; the videos play short-lived replay links.
import { $, h, api, say, takeSecret, clock } from "./dom.js";
import { register, t, apply, langButton, onLang, errorText } from "./i18n.js";

register({
  zh: {
    "replay.title": "三课 · 录播回放", "replay.heading": "录播回放", "replay.skip": "跳到搜索结果",
    "replay.search": "搜索课程", "replay.school": "学校", "replay.teacher": "教师", "replay.subject": "学科",
    "replay.grade": "年级", "replay.from": "开始日期", "replay.to": "结束日期", "replay.kind": "类型",
    "replay.kindAll": "全部", "replay.go": "搜索", "replay.results": "搜索结果", "replay.prev": "上一页", "replay.next": "下一页",
    "replay.count": "共 {n} 节课", "replay.none": "没有符合条件的录播课程。", "replay.pageOf": "第 {page} / {pages} 页",
    "replay.searching": "正在搜索…", "replay.camera": "教师画面", "replay.screen": "屏幕共享", "replay.noScreen": "此时没有屏幕共享",
    "replay.play": "播放", "replay.pause": "暂停", "replay.back": "后退 10 秒", "replay.fwd": "前进 10 秒", "replay.position": "进度",
    "replay.publish": "发布给观众", "replay.unpublish": "取消发布", "replay.published": "已发布", "replay.unpublished": "未发布",
    "replay.gradeN": "{n} 年级", "replay.parts": "{n} 个片段", "replay.mb": "{n} MB", "replay.openLabel": "播放：{what}",
    "replay.didPublish": "已发布给观众。", "replay.didUnpublish": "已取消发布。", "replay.videoError": "视频无法播放：{message}",
    "kind.dedicated": "专递课堂", "kind.master": "名师课堂", "kind.broadcast": "名校网络课堂",
  },
  en: {
    "replay.title": "Sanke · Replay library", "replay.heading": "Replay library", "replay.skip": "Skip to the results",
    "replay.search": "Find a lesson", "replay.school": "School", "replay.teacher": "Teacher", "replay.subject": "Subject",
    "replay.grade": "Grade", "replay.from": "From", "replay.to": "To", "replay.kind": "Type",
    "replay.kindAll": "All", "replay.go": "Search", "replay.results": "Results", "replay.prev": "Previous page", "replay.next": "Next page",
    "replay.count": "{n} lessons", "replay.none": "No recorded lesson matches.", "replay.pageOf": "Page {page} of {pages}",
    "replay.searching": "Searching…", "replay.camera": "Teacher", "replay.screen": "Screen share", "replay.noScreen": "No screen share at this moment",
    "replay.play": "Play", "replay.pause": "Pause", "replay.back": "Back 10 s", "replay.fwd": "Forward 10 s", "replay.position": "Position",
    "replay.publish": "Publish for viewers", "replay.unpublish": "Withdraw", "replay.published": "Published", "replay.unpublished": "Not published",
    "replay.gradeN": "Grade {n}", "replay.parts": "{n} parts", "replay.mb": "{n} MB", "replay.openLabel": "Play: {what}",
    "replay.didPublish": "Published for viewers.", "replay.didUnpublish": "Withdrawn.", "replay.videoError": "The video cannot play: {message}",
    "kind.dedicated": "Dedicated classroom", "kind.master": "Master-teacher classroom", "kind.broadcast": "Famous-school classroom",
  },
});

const token = takeSecret("token");
// The token's role, only to offer the publish button (the server decides).
const role = (() => {
  try { return JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/"))).role; } catch { return ""; }
})();
const mayPublish = role === "coordinator" || role === "admin";
const PAGE_SIZE = 10;
const TICK_SECONDS = 0.25;
const DRIFT_SECONDS = 0.5;
const camera = $("#camera");
const screen = $("#screen");
const ui = { page: 1, pages: 1, replays: [], current: null, cams: [], scrs: [], length: 0, t: 0,
  playing: false, camPart: null, scrPart: null, dragging: 0 };
window.sanke = ui;
apply();
langButton($("#lang"));
const call = (path, opts = {}) => api(path, { token, ...opts });

if (!token) say($("#message"), t("common.noToken"), "bad");

// --- search ------------------------------------------------------------------------------

const FILTERS = [["f-school", "school"], ["f-teacher", "teacher"], ["f-subject", "subject"],
  ["f-grade", "grade"], ["f-from", "from"], ["f-to", "to"], ["f-kind", "kind"]];

async function search(page = 1) {
  const q = new URLSearchParams();
  for (const [id, key] of FILTERS) {
    const value = $(`#${id}`).value.trim();
    if (value) q.set(key, value);
  }
  q.set("page", String(page));
  q.set("page_size", String(PAGE_SIZE));
  say($("#status"), t("replay.searching"));
  try {
    const reply = await call(`/api/v1/replays?${q}`);
    ui.page = reply.page;
    ui.pages = Math.max(1, Math.ceil(reply.total / reply.page_size));
    ui.replays = reply.replays;
    ui.total = reply.total;
    say($("#message"), "");
    renderResults();
  } catch (e) {
    say($("#message"), errorText(e), "bad");
  } finally {
    say($("#status"), "");
  }
}

function describe(r) {
  const bits = [r.school, r.teacher, r.subject, r.grade ? t("replay.gradeN", { n: r.grade }) : "", t(`kind.${r.kind}`)];
  return bits.filter(Boolean).join(" · ");
}

function renderResults() {
  const list = $("#results");
  list.replaceChildren();
  $("#count").textContent = ui.total ? t("replay.count", { n: ui.total }) : t("replay.none");
  for (const r of ui.replays) {
    const what = `${r.date} ${describe(r)}`;
    list.append(h("li", {}, h("button", {
      type: "button", dataset: { id: r.id }, "aria-label": t("replay.openLabel", { what }),
      "aria-current": ui.current && ui.current.id === r.id ? "true" : "false",
      onclick: () => open(r.id),
    }, h("span", { class: "when" }, r.date), h("span", { class: "what" }, describe(r)),
      h("span", {}, clock(r.duration_seconds)),
      h("span", { class: "pill" }, r.published ? t("replay.published") : t("replay.unpublished")))));
  }
  $("#page").textContent = t("replay.pageOf", { page: ui.page, pages: ui.pages });
  $("#prev").disabled = ui.page <= 1;
  $("#next").disabled = ui.page >= ui.pages;
}

$("#search").addEventListener("submit", (e) => { e.preventDefault(); search(1); });
$("#prev").addEventListener("click", () => search(ui.page - 1));
$("#next").addEventListener("click", () => search(ui.page + 1));

// --- the player: one timeline, two tracks -----------------------------------------------

async function open(id) {
  let detail;
  try {
    detail = await call(`/api/v1/replays/${encodeURIComponent(id)}`);
  } catch (e) {
    say($("#message"), errorText(e), "bad");
    return;
  }
  pause();
  for (const video of [camera, screen]) { video.removeAttribute("src"); delete video.dataset.part; video.load(); }
  ui.current = detail;
  const timed = (p) => ({ ...p, off: p.started_at - detail.started_at, end: p.ended_at - detail.started_at });
  ui.cams = detail.parts.filter((p) => p.track === "camera").map(timed);
  ui.scrs = detail.parts.filter((p) => p.track === "screen").map(timed);
  ui.length = detail.duration_seconds;
  ui.camPart = ui.scrPart = null;
  $("#seek").max = String(Math.ceil(ui.length));
  $("#screen-box").hidden = ui.scrs.length === 0;
  $("#player").hidden = false;
  renderPlayer();
  renderResults();
  place(0);
  $("#player").scrollIntoView({ block: "start" });
  $("#play").focus();
}

function renderPlayer() {
  const r = ui.current;
  if (!r) return;
  $("#h-player").textContent = `${r.date} ${r.subject || r.name || r.id}`;
  const mb = (r.bytes / 1e6).toFixed(1);
  $("#meta").textContent = [describe(r), clock(r.duration_seconds), t("replay.parts", { n: r.parts.length }),
    t("replay.mb", { n: mb }), r.published ? t("replay.published") : t("replay.unpublished")].join(" · ");
  const publish = $("#publish");
  publish.hidden = !mayPublish;
  publish.textContent = r.published ? t("replay.unpublish") : t("replay.publish");
  $("#play").textContent = ui.playing ? t("replay.pause") : t("replay.play");
}

const partAt = (parts, at) => parts.find((p) => at >= p.off && at < p.end) || null;

function load(video, part, at) {
  if (video.dataset.part !== String(part.n)) {
    video.src = part.url;
    video.dataset.part = String(part.n);
  }
  const seek = () => { video.currentTime = Math.max(0, at); };
  if (video.readyState >= 1) seek(); else video.addEventListener("loadedmetadata", seek, { once: true });
}

/** Move the lesson's timeline to ``at`` seconds: each track to the part covering it. */
function place(at) {
  ui.t = Math.max(0, Math.min(at, ui.length));
  const cam = partAt(ui.cams, ui.t);
  ui.camPart = cam;
  if (cam) {
    load(camera, cam, ui.t - cam.off);
    if (ui.playing) camera.play().catch(() => {});
  } else {
    camera.pause();
  }
  syncScreen(true);
  showTime();
}

function syncScreen(force) {
  const part = partAt(ui.scrs, ui.t);
  $("#no-screen").hidden = Boolean(part);
  screen.hidden = !part;
  if (!part) {
    ui.scrPart = null;
    if (!screen.paused) screen.pause();
    return;
  }
  const at = ui.t - part.off;
  if (part !== ui.scrPart) {
    ui.scrPart = part;
    load(screen, part, at);
  } else if (screen.readyState >= 1 && (force || Math.abs(screen.currentTime - at) > DRIFT_SECONDS)) {
    screen.currentTime = at;
  }
  if (ui.playing && screen.paused) screen.play().catch(() => {});
  if (!ui.playing && !screen.paused) screen.pause();
}

function tick() {
  if (!ui.playing || !ui.current) return;
  const cam = ui.camPart;
  if (cam && !camera.paused && !camera.ended && camera.readyState >= 2) ui.t = cam.off + camera.currentTime;
  else if (!cam || camera.ended) ui.t += TICK_SECONDS; // between parts the lesson's clock runs on
  if (ui.t >= ui.length) { ui.t = ui.length; pause(); }
  if (partAt(ui.cams, ui.t) !== ui.camPart) place(ui.t); else syncScreen(false);
  showTime();
}
setInterval(tick, TICK_SECONDS * 1000);

function showTime() {
  $("#time").textContent = `${clock(ui.t)} / ${clock(ui.length)}`;
  if (Date.now() - ui.dragging > 500) $("#seek").value = String(Math.floor(ui.t));
}

function play() {
  if (!ui.current) return;
  if (ui.t >= ui.length) ui.t = 0;
  ui.playing = true;
  place(ui.t);
  renderPlayer();
}

function pause() {
  ui.playing = false;
  camera.pause();
  screen.pause();
  renderPlayer();
}

$("#play").addEventListener("click", () => (ui.playing ? pause() : play()));
$("#back").addEventListener("click", () => place(ui.t - 10));
$("#fwd").addEventListener("click", () => place(ui.t + 10));
$("#seek").addEventListener("input", (e) => { ui.dragging = Date.now(); place(Number(e.target.value)); });
for (const video of [camera, screen]) {
  video.addEventListener("error", () => {
    if (!video.getAttribute("src")) return;
    say($("#message"), t("replay.videoError", { message: (video.error && video.error.message) || "" }), "bad");
  });
}

$("#publish").addEventListener("click", async () => {
  const r = ui.current;
  if (!r) return;
  try {
    const updated = await call(`/api/v1/replays/${encodeURIComponent(r.id)}/published`, {
      method: "PUT", body: { published: !r.published },
    });
    r.published = updated.published;
    say($("#message"), t(r.published ? "replay.didPublish" : "replay.didUnpublish"), "ok");
    const listed = ui.replays.find((x) => x.id === r.id);
    if (listed) listed.published = r.published;
    renderPlayer();
    renderResults();
  } catch (e) {
    say($("#message"), errorText(e), "bad");
  }
});

onLang(() => { say($("#message"), ""); renderResults(); renderPlayer(); showTime(); });
if (token) search(1);

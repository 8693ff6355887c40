// Patrol (巡课): a grid of live lessons (low layer, muted), filtered by region / school /
// grade / subject; Enter or a click enlarges one (high layer). Observers are invisible to the
// lesson (the server never tells anyone about them). Takes a coordinator token: lists rooms
// and live lessons, mints an observer token per room.
import { $, h, wsUrl, api, say, takeSecret } from "./dom.js";
import { register, t, apply, langButton, onLang, errorText } from "./i18n.js";
import { SfuClient } from "./sfu-client.js";
import { QualityMeter, meter, update as updateBars, worst } from "./quality.js";
import { Tile, play } from "./tiles.js";

register({
  zh: { "patrol.title": "三课 · 巡课", "patrol.heading": "巡课", "patrol.invisible": "巡课人员对课堂不可见",
    "patrol.reload": "刷新", "patrol.filters": "筛选", "patrol.region": "区域", "patrol.school": "学校", "patrol.grade": "年级",
    "patrol.subject": "学科", "patrol.all": "全部", "patrol.lessons": "正在上课的课堂", "patrol.count": "共 {n} 个课堂",
    "patrol.none": "现在没有正在上课的课堂", "patrol.enlarge": "放大查看：{name}", "patrol.gradeN": "{n} 年级",
    "patrol.teacher": "主讲：{name}", "patrol.participants": "{n} 人在线", "patrol.noVideo": "暂无画面",
    "tile.onStage": "台上", "tile.muted": "已静音" },
  en: { "patrol.title": "Sanke · Patrol", "patrol.heading": "Patrol", "patrol.invisible": "Observers are invisible to the lesson",
    "patrol.reload": "Refresh", "patrol.filters": "Filters", "patrol.region": "Region", "patrol.school": "School", "patrol.grade": "Grade",
    "patrol.subject": "Subject", "patrol.all": "All", "patrol.lessons": "Live lessons", "patrol.count": "{n} lessons",
    "patrol.none": "No lesson is live right now", "patrol.enlarge": "Enlarge: {name}", "patrol.gradeN": "Grade {n}",
    "patrol.teacher": "Teacher: {name}", "patrol.participants": "{n} online", "patrol.noVideo": "No video yet",
    "tile.onStage": "On stage", "tile.muted": "Muted" },
});

const token = takeSecret("token");
const ui = { lessons: new Map(), schools: new Map(), meter: new Map(), big: null };
window.sanke = ui;
apply();
langButton($("#lang"));
const bigBars = meter(undefined);
$("#big-quality").append(bigBars);

function regionOf(schoolId) {
  const s = ui.schools.get(schoolId);
  return s && s.region ? `${s.region.city}/${s.region.county}` : "";
}
function schoolName(id) { return (ui.schools.get(id) || {}).name || id || ""; }

async function load() {
  if (!token) { say($("#message"), t("common.noToken"), "bad"); return; }
  say($("#status"), t("common.connecting"), "warn");
  let rooms, sessions;
  try {
    [rooms, sessions] = await Promise.all([
      api("/api/v1/rooms", { token }),
      api("/api/v1/lessons?state=live", { token }).catch(() => ({ sessions: [] })),
    ]);
    if (!ui.schools.size) {
      const district = await api("/api/v1/schedule/district", { token }).catch(() => null);
      for (const s of (district && district.schools) || []) ui.schools.set(s.id, s);
    }
  } catch (err) { say($("#status"), "", ""); say($("#message"), errorText(err), "bad"); return; }
  say($("#message"), "", "");
  const bySession = new Map(sessions.sessions.map((s) => [s.room_id, s]));
  const live = rooms.rooms.filter((r) => r.room.state === "open" && (r.participant_count > 0 || bySession.has(r.room.id)));
  const seen = new Set();
  for (const view of live) {
    const room = view.room, s = bySession.get(room.id);
    seen.add(room.id);
    const info = {
      id: room.id, name: s ? `${s.subject}${s.grade ? " · " + t("patrol.gradeN", { n: s.grade }) : ""}` : room.name || room.id,
      school: s ? s.master_school : room.school_id || "", grade: s && s.grade ? String(s.grade) : "",
      subject: s ? s.subject : "", teacher: s ? s.teacher : "", count: view.participant_count,
    };
    info.region = regionOf(info.school);
    const existing = ui.lessons.get(room.id);
    if (existing) { Object.assign(existing.info, info); existing.meta.textContent = metaText(existing.info); continue; }
    await watch(info);
  }
  for (const [id, entry] of ui.lessons) if (!seen.has(id)) unwatch(id);
  fillFilters();
  filter();
  say($("#status"), "", "");
}

function metaText(info) {
  return [schoolName(info.school), info.region, info.teacher && t("patrol.teacher", { name: info.teacher }),
    t("patrol.participants", { n: info.count })].filter(Boolean).join(" · ");
}

async function watch(info) {
  const enlarge = h("button", { type: "button", class: "enlarge" }, t("patrol.enlarge", { name: info.name }));
  const tile = new Tile({ id: info.id, name: info.name, audio: false, controls: [enlarge] });
  const meta = h("div", { class: "meta" }, metaText(info));
  tile.el.insertBefore(meta, tile.el.querySelector(".controls"));
  tile.el.dataset.room = info.id;
  const entry = { info, tile, meta, enlarge, client: null, meter: new QualityMeter() };
  ui.lessons.set(info.id, entry);
  enlarge.addEventListener("click", () => openBig(info.id));
  tile.video.addEventListener("click", () => openBig(info.id));
  onLang(() => { enlarge.textContent = t("patrol.enlarge", { name: info.name }); meta.textContent = metaText(info); });
  $("#grid").append(tile.el);
  let minted;
  try {
    minted = await api("/api/v1/tokens", { token, method: "POST",
      body: { subject: `patrol-${Math.random().toString(36).slice(2, 10)}`, role: "observer", room: info.id, name: "巡课" } });
  } catch (err) { say($("#message"), errorText(err), "bad"); return; }
  const client = new SfuClient({ wsUrl: wsUrl(), token: minted.token, reconnect: true, log: (l) => console.debug(l) });
  entry.client = client;
  client.on("joined", () => client.setLayer(ui.big === info.id ? "high" : "low"));
  client.on("track", ({ track, participantId }) => {
    if (track.kind !== "video") return;
    const p = client.participants.get(participantId);
    if (p && p.role !== "teacher" && tile.hasVideo()) return; // the teacher first
    tile.addTrack(track);
    if (ui.big === info.id) showBig(entry);
  });
  client.on("fatal", () => unwatch(info.id));
  client.on("mediaerror", ({ error }) => say($("#message"), errorText(error), "warn"));
  try { await client.start(); } catch (err) { say($("#message"), errorText(err), "warn"); }
}

function unwatch(id) {
  const entry = ui.lessons.get(id);
  if (!entry) return;
  if (entry.client) entry.client.close();
  entry.tile.remove();
  ui.lessons.delete(id);
  if (ui.big === id) closeBig();
}

function options(select, values, label) {
  const current = select.value;
  select.replaceChildren(h("option", { value: "" }, t("patrol.all")), ...[...values].sort().map((v) => h("option", { value: v }, label(v))));
  if ([...values].includes(current)) select.value = current;
}

function fillFilters() {
  const all = [...ui.lessons.values()].map((e) => e.info);
  options($("#f-region"), new Set(all.map((i) => i.region).filter(Boolean)), (v) => v);
  options($("#f-school"), new Set(all.map((i) => i.school).filter(Boolean)), schoolName);
  options($("#f-grade"), new Set(all.map((i) => i.grade).filter(Boolean)), (v) => t("patrol.gradeN", { n: v }));
  options($("#f-subject"), new Set(all.map((i) => i.subject).filter(Boolean)), (v) => v);
}

function filter() {
  const want = { region: $("#f-region").value, school: $("#f-school").value, grade: $("#f-grade").value, subject: $("#f-subject").value };
  let shown = 0;
  for (const entry of ui.lessons.values()) {
    const ok = Object.entries(want).every(([k, v]) => !v || entry.info[k] === v);
    entry.tile.el.hidden = !ok;
    if (ok) shown += 1;
  }
  $("#count").textContent = ui.lessons.size ? t("patrol.count", { n: shown }) : t("patrol.none");
}

function openBig(id) {
  const entry = ui.lessons.get(id);
  if (!entry) return;
  ui.big = id;
  ui.opener = document.activeElement;
  if (entry.client) entry.client.setLayer("high");
  $("#big-title").textContent = `${entry.info.name} · ${schoolName(entry.info.school)}`;
  showBig(entry);
  $("#big").classList.add("open");
  $("#big-close").focus();
}

function showBig(entry) {
  const v = $("#big-video");
  const track = entry.tile.stream.getVideoTracks()[0];
  v.srcObject = track ? new MediaStream([track]) : null;
  if (track) play(v);
}

function closeBig() {
  const entry = ui.lessons.get(ui.big);
  if (entry && entry.client) entry.client.setLayer("low");
  ui.big = null;
  $("#big").classList.remove("open");
  $("#big-video").srcObject = null;
  if (ui.opener && document.contains(ui.opener)) ui.opener.focus();
}

$("#big-close").addEventListener("click", closeBig);
$("#big").addEventListener("keydown", (e) => {
  if (e.key === "Escape") closeBig();
  if (e.key === "Tab") { e.preventDefault(); $("#big-close").focus(); } // keep focus in the dialog
});
for (const id of ["#f-region", "#f-school", "#f-grade", "#f-subject"]) $(id).addEventListener("change", filter);
$("#reload").addEventListener("click", load);
onLang(() => { fillFilters(); filter(); });
setInterval(async () => {
  for (const entry of ui.lessons.values()) {
    if (!entry.client || !entry.client.pc) continue;
    const q = await entry.meter.sample(entry.client.pc);
    const ids = entry.tile.trackIds();
    entry.tile.setQuality(worst(ids.map((x) => q.byTrack.get(x)?.level)));
    entry.tile.el.dataset.frames = String(ids.reduce((n, x) => n + (q.byTrack.get(x)?.framesDecoded || 0), 0));
    if (ui.big === entry.info.id) updateBars(bigBars, entry.tile.level);
  }
}, 2000);
setInterval(load, 20000);
load();

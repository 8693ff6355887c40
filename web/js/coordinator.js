// Coordinator: district data upload (JSON / CSV) with errors per row and field, the pairings
// (结对帮扶) list with add and remove, solve jobs with progress, the week grid per classroom /
// school / teacher with pin and ban, unmet demand with reasons, publish, 开课率 tables. Calls /api/v1/schedule/… and /api/v1/lessons/stats with the
// coordinator token from ?token=.
import { $, $$, h, api, say, takeSecret } from "./dom.js";
import { register, t, apply, langButton, onLang, errorText } from "./i18n.js";
import { pairingsOf, pairingsSection, reasonItem } from "./coordinator-pairings.js";
import { sourcesSection } from "./coordinator-sources.js";

register({
  zh: {
    "coord.replays": "录播回放", "coord.title": "三课 · 区县排课", "coord.heading": "区县排课与开课统计", "coord.nav": "功能",
    "coord.data": "数据上传", "coord.solve": "排课", "coord.timetable": "课表", "coord.unmet": "未满足需求", "coord.stats": "开课率",
    "coord.jsonFile": "区县数据（JSON）", "coord.upload": "上传", "coord.csvKind": "表格类型", "coord.bells": "作息时间",
    "coord.offerings": "主讲课程", "coord.demands": "远端需求", "coord.csvFile": "CSV 文件", "coord.errors": "数据错误（按行/字段）",
    "coord.file": "文件", "coord.rowNo": "行", "coord.field": "字段", "coord.problem": "问题",
    "coord.timeLimit": "时间上限（秒）", "coord.resolve": "在已发布课表基础上重排（保留已有安排）", "coord.run": "开始排课",
    "coord.cancel": "取消", "coord.progress": "排课进度", "coord.versions": "课表版本", "coord.version": "版本", "coord.served": "已满足",
    "coord.gap": "差距", "coord.state": "状态", "coord.viewBy": "查看", "coord.byClassroom": "按教室（班级）", "coord.bySchool": "按学校",
    "coord.byTeacher": "按教师", "coord.which": "对象", "coord.publish": "发布此版本", "coord.confirmPublish": "发布此版本会使本学期没有课程。确定仍要发布吗？", "coord.class": "班级", "coord.subject": "学科",
    "coord.missing": "缺课时", "coord.reasons": "原因", "coord.groupBy": "分组", "coord.byCounty": "按县（区）", "coord.byCity": "按市",
    "coord.byProvince": "按省", "coord.period": "时段", "coord.term": "本学期", "coord.month": "本月", "coord.week": "本周",
    "coord.refresh": "刷新", "coord.csv": "导出 CSV", "coord.group": "分组", "coord.scheduled": "应开", "coord.held": "已开",
    "coord.missed": "未开", "coord.cancelled": "取消", "coord.rate": "开课率", "coord.late": "平均迟到（分钟）", "coord.attendance": "远端出勤率",
    "coord.pin": "固定", "coord.unpin": "取消固定", "coord.ban": "禁止", "coord.pinLabel": "固定：{what}", "coord.banLabel": "禁止此安排：{what}",
    "coord.periodN": "第 {n} 节", "coord.uploaded": "已上传：{schools} 所学校，{offerings} 门主讲课程，{demands} 个远端需求",
    "coord.summary": "{name}：{schools} 所学校，{offerings} 门主讲课程，{demands} 个远端需求，{pins} 个固定，{bans} 个禁止，{pairings} 个结对",
    "coord.noDistrict": "尚未上传区县数据。", "coord.invalid": "数据有 {n} 处错误，未保存。", "coord.csvSaved": "已导入 {kind}。",
    "coord.chooseFile": "请先选择文件。", "coord.badJson": "文件不是有效的 JSON：{message}",
    "coord.phase.queued": "排队中", "coord.phase.candidates": "生成候选", "coord.phase.greedy": "贪心初解", "coord.phase.mip": "整数规划求解",
    "coord.phase.explain": "生成说明", "coord.phase.done": "完成", "coord.phase.failed": "失败", "coord.phase.cancelled": "已取消",
    "coord.progressText": "{phase}：{done}/{total} 部分，已满足 {served}{bound}", "coord.boundText": "（上界 {n}）",
    "coord.solved": "排课完成：版本 {v}，满足 {served}/{demanded} 课时。", "coord.explainingLate": "结果已保存；正在补充未满足需求的原因…", "coord.explainedLate": "未满足需求的原因已补充完整。", "coord.published": "已发布版本 {v}。",
    "coord.publishedBadge": "已发布", "coord.show": "查看", "coord.noVersion": "还没有课表，请先排课。",
    "coord.pinned": "已固定：{what}", "coord.unpinned": "已取消固定：{what}", "coord.banned": "已禁止：{what}，重新排课后生效。",
    "coord.gridCaption": "{what} 的周课表（版本 {v}）", "coord.none": "无", "coord.percent": "{n}%",
    "weekday.mon": "周一", "weekday.tue": "周二", "weekday.wed": "周三", "weekday.thu": "周四", "weekday.fri": "周五", "weekday.sat": "周六", "weekday.sun": "周日",
  },
  en: {
    "coord.replays": "Replay library", "coord.title": "Sanke · District timetable", "coord.heading": "District timetable and 开课率", "coord.nav": "Sections",
    "coord.data": "Data upload", "coord.solve": "Solve", "coord.timetable": "Timetable", "coord.unmet": "Unmet demand", "coord.stats": "Lessons held",
    "coord.jsonFile": "District data (JSON)", "coord.upload": "Upload", "coord.csvKind": "Sheet", "coord.bells": "Bell schedules",
    "coord.offerings": "Master lessons", "coord.demands": "Remote demand", "coord.csvFile": "CSV file", "coord.errors": "Data errors (by row / field)",
    "coord.file": "File", "coord.rowNo": "Row", "coord.field": "Field", "coord.problem": "Problem",
    "coord.timeLimit": "Time limit (s)", "coord.resolve": "Re-solve from the published timetable (keep its pairs)", "coord.run": "Solve",
    "coord.cancel": "Cancel", "coord.progress": "Solve progress", "coord.versions": "Timetable versions", "coord.version": "Version", "coord.served": "Served",
    "coord.gap": "Gap", "coord.state": "State", "coord.viewBy": "View", "coord.byClassroom": "By classroom", "coord.bySchool": "By school",
    "coord.byTeacher": "By teacher", "coord.which": "Which", "coord.publish": "Publish this version", "coord.confirmPublish": "Publishing this version leaves the term without lessons. Publish it anyway?", "coord.class": "Class", "coord.subject": "Subject",
    "coord.missing": "Missing periods", "coord.reasons": "Reasons", "coord.groupBy": "Group by", "coord.byCounty": "By county", "coord.byCity": "By city",
    "coord.byProvince": "By province", "coord.period": "Period", "coord.term": "This term", "coord.month": "This month", "coord.week": "This week",
    "coord.refresh": "Refresh", "coord.csv": "Export CSV", "coord.group": "Group", "coord.scheduled": "Scheduled", "coord.held": "Held",
    "coord.missed": "Missed", "coord.cancelled": "Cancelled", "coord.rate": "Rate held", "coord.late": "Avg. late (min)", "coord.attendance": "Remote attendance",
    "coord.pin": "Pin", "coord.unpin": "Unpin", "coord.ban": "Ban", "coord.pinLabel": "Pin: {what}", "coord.banLabel": "Ban this match: {what}",
    "coord.periodN": "Period {n}", "coord.uploaded": "Uploaded: {schools} schools, {offerings} master lessons, {demands} remote demands",
    "coord.summary": "{name}: {schools} schools, {offerings} master lessons, {demands} remote demands, {pins} pins, {bans} bans, {pairings} pairings",
    "coord.noDistrict": "No district data uploaded yet.", "coord.invalid": "{n} errors in the data; nothing was saved.", "coord.csvSaved": "Imported {kind}.",
    "coord.chooseFile": "Choose a file first.", "coord.badJson": "The file is not valid JSON: {message}",
    "coord.phase.queued": "Queued", "coord.phase.candidates": "Candidates", "coord.phase.greedy": "Greedy start", "coord.phase.mip": "MIP",
    "coord.phase.explain": "Explaining", "coord.phase.done": "Done", "coord.phase.failed": "Failed", "coord.phase.cancelled": "Cancelled",
    "coord.progressText": "{phase}: {done}/{total} parts, {served} served{bound}", "coord.boundText": " (bound {n})",
    "coord.solved": "Solved: version {v}, {served}/{demanded} periods served.", "coord.explainingLate": "Result saved; explaining the unmet demand…", "coord.explainedLate": "Every unmet demand is explained now.", "coord.published": "Published version {v}.",
    "coord.publishedBadge": "Published", "coord.show": "Show", "coord.noVersion": "No timetable yet: solve first.",
    "coord.pinned": "Pinned: {what}", "coord.unpinned": "Unpinned: {what}", "coord.banned": "Banned: {what}; takes effect at the next solve.",
    "coord.gridCaption": "Week of {what} (version {v})", "coord.none": "none", "coord.percent": "{n}%",
    "weekday.mon": "Mon", "weekday.tue": "Tue", "weekday.wed": "Wed", "weekday.thu": "Thu", "weekday.fri": "Fri", "weekday.sat": "Sat", "weekday.sun": "Sun",
  },
});

const token = takeSecret("token");
const S = "/api/v1/schedule";
const WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"];
const ui = { district: null, versions: [], version: null, timetable: null, job: null };
window.sanke = ui;
apply();
langButton($("#lang"));
const call = (path, opts = {}) => api(path, { token, ...opts });
// The replay library takes the same token from its link (and drops it from the address bar).
$("#replay-link").addEventListener("click", (e) => {
  if (!token) return;
  e.preventDefault();
  location.assign(`replay.html?token=${encodeURIComponent(token)}`);
});

// --- panels ------------------------------------------------------------------------------

function show(panel) {
  for (const b of $$("nav button")) b.setAttribute("aria-pressed", String(b.dataset.panel === panel));
  for (const p of $$("section.panel")) p.hidden = p.id !== `panel-${panel}`;
  if (panel === "sources") openSources();
}

// The sources panel needs the district's master classrooms: fetched when it opens.
async function openSources() {
  if (!ui.district) await loadDistrict().catch(() => {});
  await sources.load();
}
for (const b of $$("nav button")) b.addEventListener("click", () => show(b.dataset.panel));

function fail(err) {
  if (err && err.details && err.details.length) showErrors(err.details);
  say($("#message"), err && err.details && err.details.length ? t("coord.invalid", { n: err.details.length }) : errorText(err), "bad");
}

// --- data --------------------------------------------------------------------------------

function showErrors(details) {
  const body = $("#errors tbody");
  body.replaceChildren(...details.map((d) => {
    const parts = String(d.loc || "").split("/");
    // CSV: kind/line/field; JSON: list/index/field… (index shown 1-based)
    const file = parts[0] || "";
    const row = parts.length > 1 && /^\d+$/.test(parts[1]) ? (["bells", "offerings", "demands", "pairings"].includes(file) && !ui.lastJson ? parts[1] : String(Number(parts[1]) + 1)) : "";
    const field = parts.slice(row ? 2 : 1).join(".");
    return h("tr", { class: "error-row", dataset: { row, field } }, h("td", {}, file), h("td", { class: "num" }, row), h("td", {}, field), h("td", {}, d.msg));
  }));
  $("#errors").hidden = !details.length;
}

async function readFile(input) {
  const file = input.files && input.files[0];
  if (!file) { say($("#message"), t("coord.chooseFile"), "warn"); return null; }
  return file.text();
}

async function uploadJson() {
  const text = await readFile($("#json-file"));
  if (text === null) return;
  try { JSON.parse(text); } catch (e) { say($("#message"), t("coord.badJson", { message: e.message }), "bad"); return; }
  ui.lastJson = true;
  try {
    const r = await call(`${S}/district`, { method: "PUT", body: text, contentType: "application/json" });
    showErrors([]);
    say($("#message"), t("coord.uploaded", r), "ok");
    await loadDistrict();
  } catch (err) { fail(err); }
}

async function uploadCsv() {
  const text = await readFile($("#csv-file"));
  if (text === null) return;
  const kind = $("#csv-kind").value;
  ui.lastJson = false;
  try {
    await call(`${S}/district/csv/${kind}`, { method: "PUT", body: text, contentType: "text/csv" });
    showErrors([]);
    say($("#message"), t("coord.csvSaved", { kind: $("#csv-kind").selectedOptions[0].textContent }), "ok");
    await loadDistrict();
  } catch (err) { fail(err); }
}

async function loadDistrict() {
  try { ui.district = await call(`${S}/district`); } catch (err) {
    if (err.status === 404) { ui.district = null; $("#summary").textContent = t("coord.noDistrict"); return; }
    throw err;
  }
  const d = ui.district;
  $("#district").textContent = d.name || d.id;
  $("#summary").textContent = t("coord.summary", { name: d.name || d.id, schools: d.schools.length, offerings: d.offerings.length,
    demands: d.demands.length, pins: d.pins.length, bans: d.bans.length, pairings: pairingsOf(d).length });
  pairings.render();
}

const sources = sourcesSection({ call, fail, district: () => ui.district });

const pairings = pairingsSection({
  district: () => ui.district, call, reload: loadDistrict, fail, showErrors, markJson: () => { ui.lastJson = true; },
});

// --- solve -------------------------------------------------------------------------------

async function run() {
  say($("#message"), "", "");
  try {
    const job = await call(`${S}/jobs`, { method: "POST", body: { time_limit: Number($("#time-limit").value) || 20, resolve: $("#resolve").checked } });
    ui.job = job.id;
    $("#run").disabled = true; $("#cancel").disabled = false;
    progress(job);
    poll();
  } catch (err) { fail(err); }
}

async function poll() {
  if (!ui.job) return;
  let job;
  try { job = await call(`${S}/jobs/${ui.job}`); } catch (err) { fail(err); ui.job = null; return; }
  progress(job);
  if (job.state === "running") { setTimeout(poll, 400); return; }
  ui.job = null;
  $("#run").disabled = false; $("#cancel").disabled = true;
  if (job.state === "done") {
    await loadVersions();
    await selectVersion(job.version);
    const s = ui.timetable.stats;
    say($("#message"), t("coord.solved", { v: job.version, served: s.served, demanded: s.demanded }), "ok");
    if (job.explaining) { $("#phase").textContent = t("coord.explainingLate"); setTimeout(() => pollLate(job.id, job.version), 1000); }
  } else if (job.state === "failed") {
    say($("#message"), errorText({ message: job.error }), "bad");
  }
}

// The time limit left some unmet demand unexplained: the job works out the reasons after
// its result and replaces them in that version; the list is reloaded when they are in.
async function pollLate(jobId, version) {
  let job;
  try { job = await call(`${S}/jobs/${jobId}`); } catch (err) { fail(err); return; }
  if (job.explaining) { $("#phase").textContent = t("coord.explainingLate"); setTimeout(() => pollLate(jobId, version), 1000); return; }
  progress(job);
  if (ui.version === version) { await selectVersion(version); say($("#message"), t("coord.explainedLate"), "ok"); }
}

function progress(job) {
  const p = job.progress;
  const bar = $("#progress");
  bar.value = job.state === "done" ? 100 : p.parts_total ? Math.round((100 * p.parts_done) / p.parts_total) : 5;
  $("#phase").textContent = t("coord.progressText", { phase: t(`coord.phase.${p.phase}`), done: p.parts_done, total: p.parts_total,
    served: p.served, bound: p.bound !== null && p.bound !== undefined ? t("coord.boundText", { n: p.bound }) : "" });
  $("#phase").dataset.phase = p.phase;
}

async function loadVersions() {
  ui.versions = await call(`${S}/timetables`);
  $("#versions tbody").replaceChildren(...[...ui.versions].reverse().map((v) =>
    h("tr", { dataset: { version: v.version } }, h("td", { class: "num" }, v.version), h("td", { class: "num" }, `${v.served}/${v.demanded}`),
      h("td", { class: "num" }, `${v.gap_pct}%`), h("td", {}, v.published ? t("coord.publishedBadge") : ""),
      h("td", {}, h("button", { type: "button", onclick: () => { selectVersion(v.version); show("timetable"); } }, `${t("coord.show")} ${v.version}`)))));
  const select = $("#tt-version");
  select.replaceChildren(...[...ui.versions].reverse().map((v) => h("option", { value: v.version }, `${v.version}${v.published ? " · " + t("coord.publishedBadge") : ""}`)));
  if (ui.version) select.value = ui.version;
}

async function selectVersion(version) {
  if (!version) return;
  ui.timetable = await call(`${S}/timetables/${version}`);
  ui.version = version;
  $("#tt-version").value = version;
  await loadDistrict();
  fillKeys();
  renderGrid();
  renderUnmet();
}

async function publish() {
  if (!ui.version) return;
  try {
    const path = `${S}/timetables/${ui.version}/publish`;
    try {
      await call(path, { method: "POST" });
    } catch (err) {
      // Refused: it would serve nobody or remove every future lesson. Only on purpose.
      if (err.status !== 409 || !window.confirm(`${t("coord.confirmPublish")}\n\n${err.message}`)) throw err;
      await call(path, { method: "POST", body: { confirm: true } });
    }
    say($("#message"), t("coord.published", { v: ui.version }), "ok");
    await loadVersions();
  } catch (err) { fail(err); }
}

// --- the week grid -----------------------------------------------------------------------

const offering = (id) => ui.district && ui.district.offerings.find((o) => o.id === id);
const schoolName = (id) => (ui.district && ui.district.schools.find((s) => s.id === id) || {}).name || id;
const isPinned = (a) => !!(ui.district && ui.district.pins.some((p) => p.class_id === a.class_id && p.offering_id === a.offering_id));

function fillKeys() {
  const kind = $("#view-kind").value;
  const tt = ui.timetable;
  if (!tt) return;
  let keys;
  if (kind === "classroom") keys = [...new Set([...tt.assignments.map((a) => a.class_id), ...tt.unmet.map((u) => u.class_id)])].map((k) => [k, k]);
  else if (kind === "teacher") keys = [...new Set(tt.assignments.map((a) => a.teacher))].map((k) => [k, k]);
  else keys = [...new Set(tt.assignments.flatMap((a) => [a.school, a.master_school]))].map((k) => [k, schoolName(k)]);
  keys.sort((a, b) => a[1].localeCompare(b[1], "zh-CN"));
  const select = $("#view-key");
  const current = select.value;
  select.replaceChildren(...keys.map(([value, label]) => h("option", { value }, label)));
  if (keys.some(([v]) => v === current)) select.value = current;
}

function renderGrid() {
  const tt = ui.timetable;
  if (!tt) { $("#grid-caption").textContent = t("coord.noVersion"); return; }
  const kind = $("#view-kind").value, key = $("#view-key").value;
  const cells = new Map(); // "weekday/period" -> [{a, period}]
  for (const a of tt.assignments) {
    let period = null;
    if (kind === "classroom" && a.class_id === key) period = a.remote_period;
    else if (kind === "teacher" && a.teacher === key) period = a.master_period;
    else if (kind === "school" && a.school === key) period = a.remote_period;
    else if (kind === "school" && a.master_school === key) period = a.master_period;
    if (period === null) continue;
    const k = `${a.weekday}/${period}`;
    if (!cells.has(k)) cells.set(k, []);
    cells.get(k).push(a);
  }
  const maxPeriod = Math.max(7, ...[...cells.keys()].map((k) => Number(k.split("/")[1])));
  $("#grid thead").replaceChildren(h("tr", {}, h("td", {}), ...WEEKDAYS.map((d) => h("th", { scope: "col" }, t(`weekday.${d}`)))));
  const rows = [];
  for (let p = 1; p <= maxPeriod; p++) {
    rows.push(h("tr", {}, h("th", { scope: "row" }, t("coord.periodN", { n: p })),
      ...WEEKDAYS.map((d) => h("td", { dataset: { cell: `${d}/${p}` } }, ...(cells.get(`${d}/${p}`) || []).map((a) => lessonBox(a, kind))))));
  }
  $("#grid tbody").replaceChildren(...rows);
  const label = $("#view-key").selectedOptions[0] ? $("#view-key").selectedOptions[0].textContent : "";
  $("#grid-caption").textContent = t("coord.gridCaption", { what: label, v: tt.version });
}

function lessonBox(a, kind) {
  const o = offering(a.offering_id) || {};
  const who = kind === "teacher" ? `${a.class_id}` : `${o.subject || ""} · ${a.teacher}`;
  const where = kind === "teacher" ? `${schoolName(a.school)}` : `${schoolName(a.master_school)} ${o.classroom || ""}`;
  const what = `${a.class_id} ← ${o.subject || a.offering_id} ${a.teacher} (${t(`weekday.${a.weekday}`)} ${t("coord.periodN", { n: a.master_period })})`;
  const pinned = isPinned(a);
  const pin = h("button", { type: "button", class: "pin", "aria-pressed": String(pinned), "aria-label": t("coord.pinLabel", { what }) }, pinned ? t("coord.unpin") : t("coord.pin"));
  const ban = h("button", { type: "button", class: "ban", "aria-label": t("coord.banLabel", { what }) }, t("coord.ban"));
  pin.addEventListener("click", () => pair("pins", a, !isPinned(a), what));
  ban.addEventListener("click", () => pair("bans", a, true, what));
  return h("div", { class: "lesson" + (pinned ? " pinned" : ""), dataset: { classId: a.class_id, offering: a.offering_id } },
    h("div", { class: "who" }, who), h("div", {}, where, ` · ${a.overlap_minutes}′`), pin, ban);
}

async function pair(kind, a, add, what) {
  try {
    await call(`${S}/${kind}`, { method: add ? "POST" : "DELETE", body: { class_id: a.class_id, offering_id: a.offering_id } });
    await loadDistrict();
    const focusKey = `${a.class_id}|${a.offering_id}|${kind}`;
    renderGrid();
    const again = $$("#grid .lesson").find((el) => `${el.dataset.classId}|${el.dataset.offering}|${kind}` === focusKey);
    if (again) again.querySelector(kind === "pins" ? ".pin" : ".ban").focus();
    say($("#message"), kind === "bans" ? t("coord.banned", { what }) : add ? t("coord.pinned", { what }) : t("coord.unpinned", { what }), "ok");
  } catch (err) { fail(err); }
}

function renderUnmet() {
  const tt = ui.timetable;
  $("#unmet tbody").replaceChildren(...(tt ? tt.unmet : []).map((u) =>
    h("tr", {}, h("td", {}, u.class_id), h("td", {}, u.subject), h("td", { class: "num" }, u.missing_periods),
      h("td", {}, h("ul", {}, ...u.reasons.map((r) => reasonItem(ui.district, u, r)))))));
}

// --- 开课率 --------------------------------------------------------------------------------

function statsQuery() { return `group_by=${$("#group-by").value}&period=${$("#period").value}`; }

async function loadStats() {
  try {
    const report = await call(`/api/v1/lessons/stats?${statsQuery()}`);
    const pct = (x) => (x === null || x === undefined ? "—" : t("coord.percent", { n: Math.round(x * 1000) / 10 }));
    const row = (r, total) => h("tr", total ? { class: "total" } : {}, h(total ? "th" : "td", {}, r.group), h("td", { class: "num" }, r.scheduled),
      h("td", { class: "num" }, r.held), h("td", { class: "num" }, r.missed), h("td", { class: "num" }, r.cancelled),
      h("td", { class: "num" }, pct(r.opening_rate)), h("td", { class: "num" }, r.average_late_minutes ?? "—"), h("td", { class: "num" }, pct(r.remote_attendance_rate)));
    $("#stats tbody").replaceChildren(...report.rows.map((r) => row(r, false)), row(report.total, true));
  } catch (err) { fail(err); }
}

async function downloadCsv() {
  try {
    const reply = await call(`/api/v1/lessons/stats?${statsQuery()}&format=csv`, { raw: true });
    const url = URL.createObjectURL(await reply.blob());
    const a = h("a", { href: url, download: "kaikelv.csv" });
    document.body.append(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  } catch (err) { fail(err); }
}

$("#upload-json").addEventListener("click", uploadJson);
$("#upload-csv").addEventListener("click", uploadCsv);
$("#run").addEventListener("click", run);
$("#cancel").addEventListener("click", async () => { if (ui.job) await call(`${S}/jobs/${ui.job}`, { method: "DELETE" }).catch(fail); });
$("#publish").addEventListener("click", publish);
$("#tt-version").addEventListener("change", () => selectVersion(Number($("#tt-version").value)));
$("#view-kind").addEventListener("change", () => { fillKeys(); renderGrid(); });
$("#view-key").addEventListener("change", renderGrid);
$("#load-stats").addEventListener("click", loadStats);
$("#group-by").addEventListener("change", loadStats);
$("#period").addEventListener("change", loadStats);
$("#stats-csv").addEventListener("click", downloadCsv);
onLang(() => { if (ui.timetable) { renderGrid(); renderUnmet(); } if (ui.district) pairings.render(); sources.render(); loadVersions().catch(() => {}); loadStats(); });

async function init() {
  if (!token) { say($("#message"), t("common.noToken"), "bad"); return; }
  try {
    // (the district is fetched once a timetable exists: before that it may not exist, and a
    // 404 would only be noise)
    await loadVersions();
    const latest = ui.versions[ui.versions.length - 1];
    if (latest) await selectVersion(latest.version);
    else $("#summary").textContent = t("coord.noDistrict");
    await loadStats();
  } catch (err) { fail(err); }
}
init();

// The coordinator page's lesson sources (主讲画面来源): the registered sources with their
// status (connected, picture, last error) and a delete button each, a form to register one
// (WHIP or RTMP) for a master classroom of the district, and the new source's URL and token
// (WHIP) or server and stream key (RTMP) shown once.
import { $, $$, h, say } from "./dom.js";
import { register, t } from "./i18n.js";

register({
  zh: {
    "coord.sources": "主讲画面来源", "coord.sourceName": "名称", "coord.sourceClassroom": "主讲教室", "coord.sourceState": "状态",
    "coord.sourceVideo": "画面", "coord.sourceError": "最近错误", "coord.addSource": "登记来源",
    "coord.sourcesHelp": "主讲教室的录播主机、编码器或 OBS 通过 WHIP 或 RTMP 推流，成为该教室当前开放课程的主讲画面（设置见 docs/ingest.md）。",
    "coord.sourceKind": "推流方式", "coord.kindWhip": "WHIP（OBS ≥ 30、编码器）", "coord.kindRtmp": "RTMP（OBS、录播主机）",
    "coord.sourceKey": "已登记“{name}”。在 OBS（设置 → 推流 → 服务 自定义）或录播主机中填写服务器 {url} 与推流码 {token}。推流码只显示这一次；编码器须关闭 B 帧、关键帧间隔 1–2 秒。",
    "coord.sourceLive": "推流中", "coord.sourceIdle": "未连接", "coord.deleteSource": "删除", "coord.deleteSourceLabel": "删除来源：{name}",
    "coord.noSources": "暂无来源：主讲教师用浏览器授课。", "coord.noClassrooms": "请先上传区县数据（主讲课程的教室）。",
    "coord.sourceSecret": "已登记“{name}”。在编码器（OBS：设置 → 推流 → 服务 WHIP）中填写服务器 {url} 与 Bearer 令牌 {token}。令牌只显示这一次。",
    "coord.sourceDeleted": "已删除来源“{name}”，其令牌立即失效。",
  },
  en: {
    "coord.sources": "Lesson sources", "coord.sourceName": "Name", "coord.sourceClassroom": "Master classroom", "coord.sourceState": "State",
    "coord.sourceVideo": "Picture", "coord.sourceError": "Last error", "coord.addSource": "Register the source",
    "coord.sourcesHelp": "A master classroom's lecture-capture host, encoder or OBS publishes over WHIP or RTMP and becomes the teacher of that classroom's open lesson (settings: docs/ingest.md).",
    "coord.sourceKind": "Protocol", "coord.kindWhip": "WHIP (OBS ≥ 30, encoders)", "coord.kindRtmp": "RTMP (OBS, lecture-capture hosts)",
    "coord.sourceKey": "Registered “{name}”. In OBS (Settings → Stream → Service Custom) or the lecture-capture host enter the server {url} and the stream key {token}. The key is shown only this once; the encoder must send no B-frames, a keyframe every 1–2 s.",
    "coord.sourceLive": "Publishing", "coord.sourceIdle": "Not connected", "coord.deleteSource": "Delete", "coord.deleteSourceLabel": "Delete source: {name}",
    "coord.noSources": "No sources: teachers teach from a browser.", "coord.noClassrooms": "Upload the district first (its master lessons' classrooms).",
    "coord.sourceSecret": "Registered “{name}”. In the encoder (OBS: Settings → Stream → Service WHIP) enter the server {url} and the bearer token {token}. The token is shown only this once.",
    "coord.sourceDeleted": "Deleted source “{name}”: its token stops working now.",
  },
});

const picture = (s) => (s && s.connected && s.height ? `${s.width}×${s.height} · ${s.fps ?? "–"} fps · ${Math.round((s.bitrate_bps || 0) / 1000)} kbps` : "");

/**
 * The sources panel. `page` gives `call(path, opts)`, `fail(err)` and `district()` (the
 * loaded district or null; the classrooms come from its master lessons).
 */
export function sourcesSection(page) {
  let sources = [];

  function classrooms() {
    const d = page.district();
    const seen = new Map();
    for (const o of (d && d.offerings) || []) seen.set(`${o.school}\u0000${o.classroom}`, o);
    const names = new Map(((d && d.schools) || []).map((s) => [s.id, s.name]));
    const options = [...seen.values()].sort((a, b) => (a.school + a.classroom).localeCompare(b.school + b.classroom))
      .map((o) => h("option", { value: `${o.school}\u0000${o.classroom}` }, `${names.get(o.school) || o.school} ${o.classroom}`));
    $("#source-classroom").replaceChildren(...options);
    return options.length;
  }

  function render() {
    const d = page.district();
    const names = new Map(((d && d.schools) || []).map((s) => [s.id, s.name]));
    const rows = sources.map((s, i) => {
      const remove = h("button", { type: "button", class: "remove", "aria-label": t("coord.deleteSourceLabel", { name: s.name }) }, t("coord.deleteSource"));
      remove.addEventListener("click", () => removeSource(s, i));
      const live = s.status && s.status.connected;
      const error = s.status && s.status.last_error;
      return h("tr", { class: "source", dataset: { id: s.id, connected: String(!!live) } },
        h("td", {}, s.name), h("td", {}, `${names.get(s.school) || s.school} ${s.classroom}`),
        h("td", { class: live ? "ok" : "" }, live ? t("coord.sourceLive") : t("coord.sourceIdle")),
        h("td", {}, picture(s.status)), h("td", { title: error ? error.code : "" }, error ? error.message : ""), h("td", {}, remove));
    });
    if (!rows.length) rows.push(h("tr", { class: "empty" }, h("td", { colspan: 6 }, t("coord.noSources"))));
    $("#sources tbody").replaceChildren(...rows);
  }

  async function load() {
    if (!classrooms()) say($("#message"), t("coord.noClassrooms"), "warn");
    try { sources = (await page.call("/api/v1/sources")).sources; } catch (err) { page.fail(err); return; }
    render();
  }

  async function addSource(event) {
    event.preventDefault();
    const [school, classroom] = $("#source-classroom").value.split("\u0000");
    const name = $("#source-name").value.trim();
    const kind = $("#source-kind").value;
    try {
      const reply = await page.call("/api/v1/sources", { method: "POST", body: { kind, name, school, classroom } });
      const rtmp = kind === "rtmp";
      const url = rtmp ? reply.source.rtmp_server : new URL(reply.source.whip_url, location.href).href;
      const token = rtmp ? reply.stream_key : reply.token;
      const note = $("#source-secret");
      note.hidden = false;
      say(note, t(rtmp ? "coord.sourceKey" : "coord.sourceSecret", { name, url, token }), "ok");
      note.dataset.url = url; note.dataset.token = token;
      $("#source-name").value = "";
      await load();
    } catch (err) { page.fail(err); }
  }

  async function removeSource(s, index) {
    try {
      await page.call(`/api/v1/sources/${encodeURIComponent(s.id)}`, { method: "DELETE" });
      await load();
      const buttons = $$("#sources .remove");
      (buttons[Math.min(index, buttons.length - 1)] || $("#source-name")).focus();
      say($("#message"), t("coord.sourceDeleted", { name: s.name }), "ok");
    } catch (err) { page.fail(err); }
  }

  $("#source-form").addEventListener("submit", addSource);
  $("#refresh-sources").addEventListener("click", load);
  return { load, render };
}

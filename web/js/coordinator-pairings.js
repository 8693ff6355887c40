// The coordinator page's pairings (结对帮扶): the district's list with a remove button per
// pairing, a form to add one (a region key or a school on each side, optional subjects), and
// the region reasons of unmet demand in the page's language. coordinator.js wires it in.
import { $, $$, h, say } from "./dom.js";
import { register, t } from "./i18n.js";

register({
  zh: {
    "coord.pairings": "结对帮扶", "coord.pairingsHelp": "结对后，提供方的主讲教师可以为受援方的班级跨县区授课（单向）。有任何结对时，只有结对允许的跨区安排才会出现；同一县区内照常安排。",
    "coord.pairServing": "提供方（主讲）", "coord.pairServed": "受援方（远端班级）", "coord.pairSubjects": "学科", "coord.pairServingKind": "提供方类型", "coord.pairServedKind": "受援方类型",
    "coord.kindRegion": "地区（县区代码）", "coord.kindSchool": "学校", "coord.subjectsHint": "学科（用 ; 分隔，留空为全部学科）", "coord.addPairing": "添加结对",
    "coord.allSubjects": "全部学科", "coord.removePairing": "解除结对", "coord.removePairingLabel": "解除结对：{what}",
    "coord.noPairings": "暂无结对：跨县区安排按政策中的“允许跨区”设置。", "coord.pairingWhat": "{serving} → {served}（{subjects}）",
    "coord.pairingAdded": "已添加结对：{what}，重新排课后生效。", "coord.pairingRemoved": "已解除结对：{what}，重新排课后生效。",
    "coord.reason.no_partner": "{schools} 开设{grade}年级{subject}，但未与本班学校结对（结对帮扶），不能为本班授课",
    "coord.reason.cross_region": "{schools} 开设{grade}年级{subject}，但在其他县区，且未允许跨区安排", "coord.listSep": "、",
  },
  en: {
    "coord.pairings": "Pairings (结对帮扶)", "coord.pairingsHelp": "A pairing lets the serving side's master teachers teach the served side's classes across regions (one way). Once there is any pairing, only the cross-region matches a pairing allows are made; matching within a region is unchanged.",
    "coord.pairServing": "Serving (master lessons)", "coord.pairServed": "Served (remote classes)", "coord.pairSubjects": "Subjects", "coord.pairServingKind": "Serving side is a",
    "coord.pairServedKind": "Served side is a", "coord.kindRegion": "Region (its code)", "coord.kindSchool": "School", "coord.subjectsHint": "Subjects (separated by ;, empty: every subject)",
    "coord.addPairing": "Add pairing", "coord.allSubjects": "every subject", "coord.removePairing": "Remove", "coord.removePairingLabel": "Remove pairing: {what}",
    "coord.noPairings": "No pairings: cross-region matching follows the policy's cross-region setting.", "coord.pairingWhat": "{serving} → {served} ({subjects})",
    "coord.pairingAdded": "Pairing added: {what}; takes effect at the next solve.", "coord.pairingRemoved": "Pairing removed: {what}; takes effect at the next solve.",
    "coord.reason.no_partner": "{schools} teach grade {grade} {subject}, but no pairing lets them serve this class's school",
    "coord.reason.cross_region": "{schools} teach grade {grade} {subject}, but in another region, and cross-region matching is off", "coord.listSep": ", ",
  },
});

// A district stored by a release before pairings has no such list (it is served as stored).
export const pairingsOf = (d) => (d && d.pairings) || [];

/**
 * The pairings section of the data panel. `page` gives what it needs of the page: `district()`
 * (the loaded district or null), `call(path, opts)`, `reload()` (fetch the district again; it
 * calls `render`), `fail(err)`, `showErrors(details)` and `markJson()` (errors that follow
 * point at the JSON list, not at a sheet's lines).
 */
export function pairingsSection(page) {
  const schoolName = (id) => ((page.district() || { schools: [] }).schools.find((s) => s.id === id) || {}).name || id;
  const sideText = (p) => (p.school ? `${schoolName(p.school)} (${p.school})` : p.region);
  const subjectsText = (p) => (p.subjects ? p.subjects.join(t("coord.listSep")) : t("coord.allSubjects"));
  const what = (p) => t("coord.pairingWhat", { serving: sideText(p.serving), served: sideText(p.served), subjects: subjectsText(p) });

  function render() {
    const d = page.district();
    const rows = pairingsOf(d).map((p, i) => {
      const remove = h("button", { type: "button", class: "remove", "aria-label": t("coord.removePairingLabel", { what: what(p) }) }, t("coord.removePairing"));
      remove.addEventListener("click", () => removePairing(p, i));
      return h("tr", { class: "pairing", dataset: { index: i } }, h("td", {}, sideText(p.serving)), h("td", {}, sideText(p.served)),
        h("td", {}, subjectsText(p)), h("td", {}, remove));
    });
    if (!rows.length) rows.push(h("tr", { class: "empty" }, h("td", { colspan: 4 }, t("coord.noPairings"))));
    $("#pairings tbody").replaceChildren(...rows);
    // Suggestions for the form: every region key (province, city, county) and every school.
    const schools = d ? d.schools : [];
    const regions = new Set();
    for (const { region: r } of schools) {
      for (const key of [r.province, `${r.province}/${r.city}`, `${r.province}/${r.city}/${r.county}`]) regions.add(key);
    }
    $("#pairing-refs").replaceChildren(...[...regions].sort().map((k) => h("option", { value: k })),
      ...schools.map((s) => h("option", { value: s.id }, s.name)));
  }

  async function addPairing(event) {
    event.preventDefault();
    const side = (kind, input) => ({ [$(kind).value]: $(input).value.trim() });
    // Chinese input methods type the full-width semicolon.
    const subjects = $("#pairing-subjects").value.split(/[;；]/).map((x) => x.trim()).filter(Boolean);
    const body = { serving: side("#serving-kind", "#serving-value"), served: side("#served-kind", "#served-value"), subjects: subjects.length ? subjects : null };
    page.markJson();
    try {
      await page.call("/api/v1/schedule/pairings", { method: "POST", body });
      page.showErrors([]);
      await page.reload();
      say($("#message"), t("coord.pairingAdded", { what: what(body) }), "ok");
    } catch (err) { page.fail(err); }
  }

  async function removePairing(p, index) {
    try {
      await page.call("/api/v1/schedule/pairings", { method: "DELETE", body: p });
      await page.reload();
      // Keep the keyboard where it was: the next pairing's button, or the form.
      const buttons = $$("#pairings .remove");
      (buttons[Math.min(index, buttons.length - 1)] || $("#serving-value")).focus();
      say($("#message"), t("coord.pairingRemoved", { what: what(p) }), "ok");
    } catch (err) { page.fail(err); }
  }

  $("#pairing-form").addEventListener("submit", addPairing);
  return { render };
}

/**
 * An unmet demand's reason as a list item. The region reasons (no_partner, cross_region) are
 * said in the page's language from what they name; the server's words (English) stay as the
 * item's title. Other reasons show the server's message.
 */
export function reasonItem(district, u, r) {
  const d = district && district.demands.find((x) => x.id === u.demand_id);
  if (!d || !["no_partner", "cross_region"].includes(r.code)) return h("li", { dataset: { code: r.code } }, r.message);
  const offerings = new Map(district.offerings.map((o) => [o.id, o]));
  const names = new Map(district.schools.map((s) => [s.id, s.name]));
  const schools = [...new Set(r.offering_ids.map((id) => (offerings.has(id) ? names.get(offerings.get(id).school) || offerings.get(id).school : id)))];
  const text = t(`coord.reason.${r.code}`, { schools: schools.join(t("coord.listSep")), grade: d.grade, subject: d.subject });
  return h("li", { dataset: { code: r.code }, title: r.message }, text);
}

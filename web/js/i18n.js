// Simplified Chinese first, English switchable. Pages register their own strings; elements
// carrying data-i18n / data-i18n-label / data-i18n-title / data-i18n-placeholder are
// (re)translated by apply(). The choice is kept in localStorage ("sanke.lang": zh | en) and
// ?lang=en|zh overrides it; <html lang> follows it.
const STRINGS = {
  zh: {
    "lang.switch": "English", "lang.switchLabel": "切换到英文",
    "common.connecting": "正在连接…", "common.connected": "已连接", "common.reconnecting": "网络中断，正在重连…",
    "common.noToken": "链接中缺少访问令牌（?token=…），请向区县管理员索取。",
    "common.quality": "连接质量", "common.qualityLevel": "连接质量：{n}/5",
    "common.close": "关闭", "common.enableSound": "点击开启声音", "common.hand": "举手",
    "common.recording": "● 录制中", "err.recording_unavailable": "本节课不录制。",
    "err.token_missing": "缺少访问令牌。", "err.token_invalid": "访问令牌无效，请向区县管理员重新获取。",
    "err.token_expired": "本节课已结束（访问令牌已过期）。", "err.token_not_yet_valid": "课程尚未开始，请稍候。",
    "err.token_revoked": "此设备或令牌已被区县管理员停用。",
    "err.wrong_room": "令牌与课堂不符。", "err.forbidden": "没有权限进行此操作。",
    "err.room_not_found": "课堂不存在。", "err.room_closed": "本节课已结束。", "err.room_full": "课堂人数已满。",
    "err.kicked": "已被移出课堂。", "err.media_unavailable": "音视频服务暂不可用，正在重试…",
    "err.media_error": "音视频连接失败，正在重试…", "err.lesson_not_open": "课程尚未开始。",
    "err.rate_limited": "操作太频繁，请稍候。", "err.network": "网络中断，正在重连…",
    "err.generic": "出错了：{message}",
  },
  en: {
    "lang.switch": "中文", "lang.switchLabel": "Switch to Chinese",
    "common.connecting": "Connecting…", "common.connected": "Connected", "common.reconnecting": "Network down, reconnecting…",
    "common.noToken": "The link has no access token (?token=…); ask the district coordinator.",
    "common.quality": "Connection quality", "common.qualityLevel": "Connection quality: {n}/5",
    "common.close": "Close", "common.enableSound": "Click to enable sound", "common.hand": "Hand raised",
    "common.recording": "● Recording", "err.recording_unavailable": "This lesson is not recorded.",
    "err.token_missing": "No access token.", "err.token_invalid": "Invalid access token; ask the coordinator for a new one.",
    "err.token_expired": "The lesson is over (the access token expired).", "err.token_not_yet_valid": "The lesson has not started yet; please wait.",
    "err.token_revoked": "This device or token has been revoked by the coordinator.",
    "err.wrong_room": "The token is for another room.", "err.forbidden": "Not allowed.",
    "err.room_not_found": "No such room.", "err.room_closed": "The lesson is over.", "err.room_full": "The room is full.",
    "err.kicked": "Removed from the lesson.", "err.media_unavailable": "Media service unavailable, retrying…",
    "err.media_error": "Media connection failed, retrying…", "err.lesson_not_open": "The lesson has not started yet.",
    "err.rate_limited": "Too many actions; please wait.", "err.network": "Network down, reconnecting…",
    "err.generic": "Something went wrong: {message}",
  },
};

const listeners = new Set();
let current = (() => {
  const asked = new URLSearchParams(location.search).get("lang");
  if (asked === "en" || asked === "zh") return asked;
  const kept = localStorage.getItem("sanke.lang");
  return kept === "en" ? "en" : "zh";
})();

export function register(strings) {
  for (const l of Object.keys(STRINGS)) Object.assign(STRINGS[l], strings[l] || {});
}

export function lang() { return current; }
export function locale() { return current === "zh" ? "zh-CN" : "en"; }

export function t(key, vars = {}) {
  const text = STRINGS[current][key] ?? STRINGS.zh[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in vars ? String(vars[name]) : `{${name}}`));
}

/** A server error (code, message) in words people understand. */
export function errorText(err) {
  const code = err && err.code;
  if (code && STRINGS.zh[`err.${code}`]) return t(`err.${code}`);
  return t("err.generic", { message: (err && (err.message || err.code)) || String(err) });
}

export function setLang(l) {
  current = l === "en" ? "en" : "zh";
  localStorage.setItem("sanke.lang", current);
  apply();
  for (const fn of listeners) fn(current);
}

export function onLang(fn) { listeners.add(fn); }

export function apply(root = document) {
  document.documentElement.lang = locale();
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-label]")) el.setAttribute("aria-label", t(el.dataset.i18nLabel));
  for (const el of root.querySelectorAll("[data-i18n-title]")) el.title = t(el.dataset.i18nTitle);
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
  const title = document.querySelector("title[data-i18n-doc]");
  if (title) document.title = t(title.dataset.i18nDoc);
}

/** Wire a language toggle button (a real <button>). */
export function langButton(button) {
  const label = () => { button.textContent = t("lang.switch"); button.setAttribute("aria-label", t("lang.switchLabel")); };
  button.addEventListener("click", () => setLang(current === "zh" ? "en" : "zh"));
  onLang(label);
  label();
}

// A small DOM helper: element builder, query, the HTTP API with a bearer token.

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];

/** h("button", {class: "x", onclick: fn, "aria-pressed": "true"}, "text", child…) */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "style") el.style.cssText = value; // CSSOM: allowed by the CSP, an attribute is not
    else if (key in el && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function param(name) { return new URLSearchParams(location.search).get(name); }

/**
 * A secret from the link (?token=…, ?credential=…): read once, then removed from the address
 * bar and this history entry (history.replaceState), so it is not bookmarked, synced, shared
 * with the URL or shown over a shoulder. Kept in `storage` (default: this tab's
 * sessionStorage, per page) so a reload still has it.
 */
export function takeSecret(name, { storage = sessionStorage, key = `sanke.${name}:${location.pathname}` } = {}) {
  const url = new URL(location.href);
  const fromUrl = url.searchParams.get(name);
  if (fromUrl !== null) {
    url.searchParams.delete(name);
    history.replaceState(history.state, "", url.pathname + url.search + url.hash);
    try { if (fromUrl) storage.setItem(key, fromUrl); } catch { /* storage disabled */ }
    return fromUrl || null;
  }
  try { return storage.getItem(key); } catch { return null; }
}

export function wsUrl(path = "/ws") {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${path}`;
}

export class ApiError extends Error {
  constructor(status, body) {
    const err = (body && body.error) || {};
    super(err.message || `HTTP ${status}`);
    this.status = status;
    this.code = err.code || (status === 0 ? "network" : "http_" + status);
    this.details = err.details || [];
  }
}

/** fetch JSON (or FormData / text) with Authorization: Bearer; throws ApiError. */
export async function api(path, { token, method = "GET", body, raw = false, contentType } = {}) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  let payload = body;
  if (body !== undefined && !(body instanceof FormData) && typeof body !== "string") {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  } else if (typeof body === "string" && contentType) {
    headers["Content-Type"] = contentType;
  }
  let reply;
  try {
    reply = await fetch(path, { method, headers, body: payload });
  } catch (e) {
    throw new ApiError(0, { error: { code: "network", message: String(e) } });
  }
  if (raw && reply.ok) return reply;
  const text = await reply.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (!reply.ok) throw new ApiError(reply.status, data);
  return data;
}

/** Show text in a live region (role=status / role=alert) and a CSS state. */
export function say(el, text, state = "") {
  el.textContent = text;
  el.dataset.state = state;
}

export function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const hh = Math.floor(s / 3600), mm = Math.floor((s % 3600) / 60), ss = s % 60;
  const two = (n) => String(n).padStart(2, "0");
  return (hh ? `${hh}:` : "") + `${two(mm)}:${two(ss)}`;
}

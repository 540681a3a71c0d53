// Helpers shared by every page: the JSON API (with the sign-in redirect), text with code,
// avatar colours and initials, and the account header.

/** The server's messages quote commands in backticks ("run `make llm`"): show them as code. */
export function withCode(text) {
  return String(text)
    .split("`")
    .map((part, i) => {
      if (i % 2 === 0) return document.createTextNode(part);
      const code = document.createElement("code");
      code.textContent = part;
      return code;
    });
}

// Hues that keep white text readable on the avatar gradients.
const HUES = [222, 250, 272, 295, 320, 345, 8, 190];

/** A stable hue per avatar id, so an avatar has the same colour on every page. */
export function hashHue(s) {
  let h = 0;
  for (const c of s) h = (h * 31 + c.codePointAt(0)) >>> 0;
  return HUES[h % HUES.length];
}

/** FastAPI's detail is a string for our errors, a list of field errors for validation. */
export function describeDetail(detail) {
  if (!detail) return "";
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) return detail.map((d) => d.msg ?? JSON.stringify(d)).join("; ");
  return JSON.stringify(detail);
}

export class HttpError extends Error {
  /** `payload` is the server's JSON body (e.g. the editor's per-field `errors`). */
  constructor(message, status, payload = null) {
    super(message);
    this.status = status;
    this.payload = payload;
  }
}

/** Where a signed-out visitor goes: the sign-in page, coming back here afterwards. */
export function toLogin() {
  const next = location.pathname + location.search;
  location.assign(`/login?next=${encodeURIComponent(next)}`);
}

/**
 * Call the server's JSON API. HTTP errors throw the server's own explanation; a 401 (not
 * signed in, or the sign-in expired) goes to the sign-in page unless `auth: false`.
 */
export async function api(method, url, body, { auth = true } = {}) {
  let res;
  try {
    res = await fetch(url, {
      method,
      headers: { Accept: "application/json", ...(body ? { "Content-Type": "application/json" } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
  } catch {
    throw new HttpError("The server did not answer. Is it still running?", 0);
  }
  const payload = await res.json().catch(() => null);
  if (res.status === 401 && auth) {
    toLogin();
    return new Promise(() => {}); // leaving the page: nothing after this should run
  }
  if (!res.ok) {
    const message = `${describeDetail(payload?.detail) || res.statusText} (HTTP ${res.status})`;
    throw new HttpError(message, res.status, payload);
  }
  return payload;
}

export const getJSON = (url) => api("GET", url);

/** Initials for avatar art: one letter for one word ("L"), two for a full name ("CR"). */
export function initialsOf(name) {
  const words = name.trim().split(/\s+/).filter(Boolean);
  const letters = words.length > 1 ? words[0][0] + words.at(-1)[0] : (words[0]?.[0] ?? "?");
  return letters.toUpperCase();
}

/** The signed-in user; a signed-out visitor is sent to sign in (and this never resolves). */
export async function requireSignIn() {
  const room = await api("GET", "/api/room", undefined, { auth: false });
  if (room.user) return room.user;
  toLogin();
  return new Promise(() => {});
}

/** Fill the page header: who is signed in, and a working sign-out button. */
export async function showAccount(el) {
  const me = await requireSignIn();
  el.querySelector("[data-username]").textContent = me.username;
  el.querySelector("[data-signout]").addEventListener("click", async () => {
    await api("POST", "/api/logout", undefined, { auth: false }).catch(() => {});
    location.assign("/login");
  });
  return me;
}

// api: the JSON API of tollgate as the admin UI calls it (SPEC 8, 13).
//
// Money comes as exact decimals (0.0000000001, 123456789.0123456789); a
// JavaScript number would round them to 17 significant digits, so the
// answer is read as text and every number that a number cannot hold
// exactly (a fraction, an exponent, an integer beyond 2^53) is kept as the
// string the API printed.  Safe integers (counts, limits) stay numbers.
// Requests send the decimals a user typed as JSON numbers, digit for digit
// (Raw below), as a curl command would.

const KEY_NAME = "tollgate.masterKey";

// A number to send as typed: text already checked to be a JSON number.
export class Raw {
  constructor(text) {
    this.text = text;
  }
}

// text with every inexact number token quoted, then JSON.parse'd.
export function parseExact(text) {
  let out = "";
  let last = 0;
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text[i];
    if (c === '"') {
      // skip a string, escapes included
      i++;
      while (i < n && text[i] !== '"') i += text[i] === "\\" ? 2 : 1;
      i++;
    } else if (c === "-" || (c >= "0" && c <= "9")) {
      let j = i + 1;
      while (j < n && /[0-9eE+.\-]/.test(text[j])) j++;
      const tok = text.slice(i, j);
      const safe = /^-?\d+$/.test(tok) && Number.isSafeInteger(Number(tok));
      if (!safe) {
        out += text.slice(last, i) + '"' + tok + '"';
        last = j;
      }
      i = j;
    } else {
      i++;
    }
  }
  return JSON.parse(out + text.slice(last));
}

// JSON text of v; a Raw is written as its text (a number as typed).
export function stringifyExact(v) {
  if (v instanceof Raw) return v.text;
  if (v === null || v === undefined) return "null";
  if (Array.isArray(v)) return "[" + v.map(stringifyExact).join(",") + "]";
  if (typeof v === "object") {
    return "{" + Object.keys(v)
      .filter((k) => v[k] !== undefined)
      .map((k) => JSON.stringify(k) + ":" + stringifyExact(v[k]))
      .join(",") + "}";
  }
  return JSON.stringify(v);
}

export class ApiError extends Error {
  constructor(status, message, type, param) {
    super(message);
    this.status = status;
    this.type = type || null;
    this.param = param || null;
  }
}

export function savedKey() {
  return sessionStorage.getItem(KEY_NAME);
}

export function saveKey(key) {
  sessionStorage.setItem(KEY_NAME, key);
}

export function forgetKey() {
  sessionStorage.removeItem(KEY_NAME);
}

// Called with the ApiError when the saved key is refused (401).
let onUnauthorized = null;
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

// The query string of an object, leaving out null, undefined and "".
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== null && v !== undefined && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return s ? "?" + s : "";
}

// The response to one request with the key (the saved one unless key is
// given), or an ApiError when the server could not be reached.
async function send(method, path, { params, body, key, accept }) {
  const k = key !== undefined ? key : savedKey();
  const headers = { Accept: accept };
  if (k) headers.Authorization = "Bearer " + k;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  try {
    return await fetch(path + query(params), {
      method,
      headers,
      body: body !== undefined ? stringifyExact(body) : undefined,
      cache: "no-store",
      credentials: "omit",
    });
  } catch (e) {
    throw new ApiError(0, "The server could not be reached (" + e.message + ").");
  }
}

function parsed(text) {
  try {
    return text ? parseExact(text) : null;
  } catch (e) {
    return undefined;
  }
}

// The ApiError of a failed response (its body text), carrying the API's
// message; a refused saved key is reported to the handler too.
function failure(res, text, key) {
  const data = parsed(text);
  const err = data && typeof data === "object" && data.error;
  const message = err && err.message
    ? String(err.message)
    : "The server answered " + res.status + " " + res.statusText +
      (text ? ": " + text.slice(0, 300) : ".");
  const e = new ApiError(res.status, message, err && err.type, err && err.param);
  if (res.status === 401 && key === undefined && onUnauthorized) onUnauthorized(e);
  return e;
}

// One call: {data, headers}, or an ApiError carrying the API's message.
// key: the key to send (sign-in tries one); the saved one by default.
export async function call(method, path, { params, body, key } = {}) {
  const res = await send(method, path, { params, body, key, accept: "application/json" });
  const text = await res.text();
  if (!res.ok) throw failure(res, text, key);
  const data = parsed(text);
  if (data === undefined) {
    throw new ApiError(res.status, "The server's answer is not JSON: " + text.slice(0, 300));
  }
  return { data, headers: res.headers };
}

// A file the API makes (GET, such as /spend/export's CSV): {blob,
// filename}, the name from Content-Disposition; or an ApiError.
export async function download(path, params) {
  const res = await send("GET", path, { params, accept: "text/csv, application/json" });
  if (!res.ok) throw failure(res, await res.text());
  const m = /filename="([^"]+)"/.exec(res.headers.get("content-disposition") || "");
  let blob;
  try {
    blob = await res.blob();
  } catch (e) {
    throw new ApiError(0, "The download was cut short (" + e.message + ").");
  }
  return { blob, filename: m ? m[1] : path.replace(/^.*\//, "") + ".csv" };
}

export const get = (path, params) => call("GET", path, { params });
export const post = (path, body) => call("POST", path, { body });

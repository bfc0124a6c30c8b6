// The admin API client. The bearer token lives in sessionStorage (gone when the tab closes) and
// travels only in the Authorization header, never in a URL. A 401 asks the app to show the
// token form.

const TOKEN_KEY = "ocpp-meter-token";

/** An API answer other than 2xx; `status` 0 means the server could not be reached. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
  }
}

let unauthorized = () => {};

/** Called with no argument whenever the API answers 401. */
export function onUnauthorized(handler) {
  unauthorized = handler;
}

/** The token in use, or null. */
export function token() {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch (_) {
    return null;
  }
}

/** Keeps `value` for this tab's session. */
export function setToken(value) {
  sessionStorage.setItem(TOKEN_KEY, value);
}

/** Headers every request sends: the token when one is known. */
export function authHeaders(extra = {}) {
  const headers = { ...extra };
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  return headers;
}

/** Calls the API; resolves to the JSON answer (null when empty), rejects with ApiError. */
export async function api(path, { method = "GET", body, signal } = {}) {
  const headers = authHeaders({ Accept: "application/json" });
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      signal,
    });
  } catch (error) {
    if (error && error.name === "AbortError") throw error;
    throw new ApiError(0, "the server cannot be reached");
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch (_) {
      data = { error: text };
    }
  }
  if (response.status === 401) {
    unauthorized();
    throw new ApiError(401, "an admin token is needed");
  }
  if (!response.ok) {
    const message = data && typeof data.error === "string" ? data.error : response.statusText;
    throw new ApiError(response.status, message || `HTTP ${response.status}`);
  }
  return data;
}

/**
 * Downloads `path` (a file the API serves, such as a CSV export) with the token header;
 * resolves to a Blob, rejects with ApiError as `api()` does.
 */
export async function fetchBlob(path, accept) {
  let response;
  try {
    response = await fetch(path, { headers: authHeaders({ Accept: accept }), cache: "no-store" });
  } catch (_) {
    throw new ApiError(0, "the server cannot be reached");
  }
  if (response.status === 401) {
    unauthorized();
    throw new ApiError(401, "an admin token is needed");
  }
  if (!response.ok) {
    let message = response.statusText;
    try {
      const data = JSON.parse(await response.text());
      if (data && typeof data.error === "string") message = data.error;
    } catch (_) {
      // Not JSON: the status text says enough.
    }
    throw new ApiError(response.status, message || `HTTP ${response.status}`);
  }
  return response.blob();
}

/** `/api/v1/...` path with the segment percent-encoded. */
export function cpPath(id, rest = "") {
  return `/api/v1/charge-points/${encodeURIComponent(id)}${rest}`;
}

/** A query string from an object, undefined and null values left out. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

/** Runs `task` over `items` with at most `limit` in flight; results in input order. */
export async function mapLimit(items, limit, task) {
  const results = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await task(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

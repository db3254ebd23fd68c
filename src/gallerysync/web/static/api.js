// HTTP calls to the gallerysync API. Every error answer has one shape,
// {"error": {"code", "message", "detail"}}; it becomes an ApiError. A 401 from any call sends
// the app back to the sign-in form (see setUnauthorizedHandler in app.js).

export class ApiError extends Error {
  constructor(status, code, message, detail = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.detail = detail;
  }
}

let unauthorized = () => {};

export function setUnauthorizedHandler(handler) {
  unauthorized = handler;
}

/**
 * `authRedirect: false` for the calls that decide about signing in themselves
 * (GET /api/me, POST /api/session).
 */
export async function request(method, path, { body, signal, authRedirect = true } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
      signal,
    });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, "network", "the server cannot be reached");
  }
  if (response.status === 401 && authRedirect) unauthorized();
  const text = await response.text();
  let payload = null;
  if (text) {
    try {
      payload = JSON.parse(text);
    } catch {
      payload = null;
    }
  }
  if (!response.ok) {
    const error = (payload && payload.error) || {};
    throw new ApiError(
      response.status,
      error.code || "http_error",
      error.message || `${response.status} ${response.statusText}`,
      error.detail ?? null,
    );
  }
  return payload;
}

export const get = (path, options) => request("GET", path, options);
export const post = (path, body, options) => request("POST", path, { ...options, body });
export const del = (path, options) => request("DELETE", path, options);

/** `?a=1&b=x` from an object, leaving out empty values. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value === null || value === undefined || value === "") continue;
    search.set(name, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

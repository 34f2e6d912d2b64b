// The server's JSON API, called with the token the user logged in with (kept for the browser
// session only, in sessionStorage).

const TOKEN_KEY = 'caravan.token';

/**
 * An error answer of the API (or no answer at all: status 0). `position`, when the error is at
 * a place in a query string: `{start, end}`, UTF-8 byte offsets into it.
 */
export class ApiError extends Error {
  constructor(status, type, reason, position = null) {
    super(reason);
    this.status = status;
    this.type = type;
    this.position = position;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  sessionStorage.setItem(TOKEN_KEY, value);
  whoamiCache = null;
}

export function clearToken() {
  sessionStorage.removeItem(TOKEN_KEY);
  whoamiCache = null;
}

/** Calls the API; answers the decoded JSON (null for an empty body) or throws an ApiError. */
export async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${token() ?? ''}`, Accept: 'application/json' };
  const init = { method, headers };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    throw new ApiError(0, 'network', `The server did not answer (${error.message}). Is it running?`);
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = text; }
  }
  if (!response.ok) {
    const reason = data?.error?.reason ?? `HTTP ${response.status} ${response.statusText}`;
    const error = new ApiError(response.status, data?.error?.type ?? 'http', reason, data?.error?.position ?? null);
    if (response.status === 401) window.dispatchEvent(new CustomEvent('caravan:unauthorized'));
    throw error;
  }
  return data;
}

export const get = (path) => api('GET', path);
export const post = (path, body) => api('POST', path, body ?? {});
export const patch = (path, body) => api('PATCH', path, body);

let whoamiCache = null;

/** Who the token is (`kind`: admin or tenant, `tenant`, `scopes`); cached per login. */
export async function whoami() {
  whoamiCache ??= get('/api/v1/whoami').catch((error) => { whoamiCache = null; throw error; });
  return whoamiCache;
}

/** Whether the token holds `scope` (admins hold every scope). */
export function can(me, scope) {
  return me.kind === 'admin' || (me.scopes ?? []).includes(scope);
}

/** The tenants this token may see: all of them for admins, its own for a tenant token. */
export async function visibleTenants() {
  const tenants = await get('/api/v1/tenants');
  return tenants.map((tenant) => tenant.name).sort();
}

/** Path segment encoding. */
export const seg = encodeURIComponent;

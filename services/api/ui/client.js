// Access to the api's JSON routes: the operator's token, errors as the api states them, polling.
import { useState, useEffect, useCallback, useRef } from '/ui/vendor/preact-htm.js';

export const TOKEN_KEY = 'wombat-token';

/** An error answer: its code, and per problem the field it concerns (error.issues, error.field). */
export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message ?? `HTTP ${status}`);
    this.status = status;
    this.code = body?.error?.code;
    this.details = body?.error?.details;
    this.field = body?.error?.field;
    this.issues = body?.error?.issues;
  }
}

export async function api(method, path, body) {
  const headers = {};
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  const parsed = text && (res.headers.get('content-type') ?? '').includes('json') ? JSON.parse(text) : null;
  if (!res.ok) {
    if (res.status === 401 && path !== '/api/whoami') window.dispatchEvent(new CustomEvent('wombat-unauthorized'));
    throw new ApiError(res.status, parsed);
  }
  return parsed;
}

// The page a visitor opens asks for its data while the token check is still on its way.
const prefetched = new Map();
if ((location.hash.slice(1) || '/') === '/') prefetched.set('/api/overview', api('GET', '/api/overview').catch(() => undefined));

/** Loads `path` now and every `everyMs` (0: once); reload() on demand. */
export function useApi(path, everyMs = 0) {
  const [state, setState] = useState({ data: null, error: null });
  // The path asked for now: an answer for an earlier one (a filter or page since changed) is dropped.
  const current = useRef(path);
  current.current = path;
  const load = useCallback(async () => {
    if (!path) return;
    try {
      const early = prefetched.get(path);
      prefetched.delete(path);
      const data = (early ? await early : undefined) ?? (await api('GET', path));
      if (current.current === path) setState({ data, error: null });
    } catch (error) {
      if (current.current === path) setState((s) => ({ data: s.data, error }));
    }
  }, [path]);
  useEffect(() => {
    load();
    if (!everyMs) return undefined;
    const t = setInterval(load, everyMs);
    return () => clearInterval(t);
  }, [load, everyMs]);
  return { ...state, reload: load };
}

let meta;
/** GET /api/meta, once: the lists (run states, triggers, job types, policies) the pages offer. */
export function loadMeta() {
  meta ??= api('GET', '/api/meta').catch((err) => {
    meta = undefined;
    throw err;
  });
  return meta;
}

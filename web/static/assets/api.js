// @ts-check
// The JSON API under /api/v1 as the pages use it: cookie auth (set by the
// login answers), the CSRF header on every state-changing request, and one
// error type whose message is fit to show to a person.
import { t, lang } from './i18n.js';

const base = '/api/v1';
let csrfToken = sessionStorage.getItem('invigil.csrf') || '';

// setCSRF remembers the token from a login answer or GET /auth/me. It is
// kept per tab (sessionStorage) so a reload keeps working without a
// round-trip, and it is useless without the HttpOnly cookie.
export function setCSRF(token) {
  csrfToken = token || '';
  if (csrfToken) sessionStorage.setItem('invigil.csrf', csrfToken);
  else sessionStorage.removeItem('invigil.csrf');
}

export class ApiError extends Error {
  /**
   * @param {number} status HTTP status, 0 for a network failure
   * @param {string} code the API's error code
   * @param {string} message
   * @param {{retryAfter?: number, detail?: string}} [extra]
   */
  constructor(status, code, message, extra = {}) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    /** @type {number | undefined} seconds to wait, from a 429's Retry-After */
    this.retryAfter = extra.retryAfter;
    /** @type {string | undefined} the server's own English message */
    this.detail = extra.detail;
  }
}

// api sends one request. body may be an object (sent as JSON), or a string
// with opts.type (e.g. 'text/csv'). It resolves to the decoded JSON (null
// for 204) and rejects with an ApiError.
export async function api(method, path, body, opts = {}) {
  const headers = { Accept: 'application/json' };
  /** @type {RequestInit} */
  const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
  if (method !== 'GET' && method !== 'HEAD' && csrfToken) headers['X-CSRF-Token'] = csrfToken;
  if (body !== undefined) {
    if (typeof body === 'string') {
      headers['Content-Type'] = opts.type || 'text/plain; charset=utf-8';
      init.body = body;
    } else {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
  }
  if (opts.signal) init.signal = opts.signal;
  let res;
  try {
    res = await fetch(base + path, init);
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', t('err.network'));
  }
  if (res.status === 204) return null;
  const text = await res.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!res.ok) {
    const e = (data && data.error) || {};
    const code = e.code || 'http_' + res.status;
    // Candidate-facing errors come in both languages; others have one
    // English sentence, which a known code can replace with our own words.
    let message = (lang() === 'zh' ? e.message_zh : e.message_en) || '';
    if (!message) message = t('err.' + code, null, '') || e.message || t('err.http', { status: res.status });
    throw new ApiError(res.status, code, message, {
      retryAfter: Number(res.headers.get('Retry-After')) || 0,
      detail: e.message || '',
    });
  }
  if (data === null && text) throw new ApiError(res.status, 'bad_response', t('err.bad_response'));
  return data;
}

export const get = (path, opts) => api('GET', path, undefined, opts);
export const post = (path, body, opts) => api('POST', path, body === undefined ? {} : body, opts);
export const put = (path, body, opts) => api('PUT', path, body, opts);
export const patch = (path, body, opts) => api('PATCH', path, body, opts);

// errorText turns anything thrown into one line for the user.
export function errorText(err) {
  if (err instanceof ApiError) return err.message;
  return t('err.unexpected', { detail: err && err.message ? err.message : String(err) });
}

// Small fetch wrapper: same-origin cookies, the CSRF token on unsafe calls,
// JSON errors turned into exceptions with the server's message.
let csrf = ''

export function setCSRF(t) { csrf = t }

export class HTTPError extends Error {
  constructor(status, msg) { super(msg); this.status = status }
}

export async function call(method, path, body) {
  const opts = { method, credentials: 'same-origin', headers: {} }
  if (method !== 'GET') opts.headers['X-CSRF-Token'] = csrf
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json'
    opts.body = JSON.stringify(body)
  }
  const r = await fetch(path, opts)
  if (r.status === 204) return null
  const data = await r.json().catch(() => ({}))
  if (!r.ok) throw new HTTPError(r.status, data.error || r.statusText)
  return data
}

export const get = (p) => call('GET', p)

export function qs(params) {
  const u = new URLSearchParams()
  for (const [k, v] of Object.entries(params)) if (v !== '' && v != null) u.set(k, v)
  return u.toString()
}

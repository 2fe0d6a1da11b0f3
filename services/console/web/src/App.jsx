import { useEffect, useState } from 'react'
import { call, get, setCSRF } from './api.js'
import Overview from './Overview.jsx'
import Series from './Series.jsx'
import Proposals from './Proposals.jsx'
import Quality from './Quality.jsx'
import Alerts from './Alerts.jsx'
import Reports from './Reports.jsx'
import Models from './Models.jsx'

// Hash routes: #/overview, #/series?key=..., #/proposals, #/quality.
function useRoute() {
  const parse = () => {
    const h = window.location.hash.replace(/^#\/?/, '') || 'overview'
    const [page, q] = h.split('?')
    return { page, params: new URLSearchParams(q || '') }
  }
  const [route, setRoute] = useState(parse)
  useEffect(() => {
    const on = () => setRoute(parse())
    window.addEventListener('hashchange', on)
    return () => window.removeEventListener('hashchange', on)
  }, [])
  return route
}

function Login({ onLogin }) {
  // The browser tests measure first load up to this mark.
  useEffect(() => { performance.mark('console-login-shown') }, [])
  const [username, setUser] = useState('')
  const [password, setPass] = useState('')
  const [err, setErr] = useState('')
  const [sso, setSSO] = useState(false)
  useEffect(() => { get('/api/login-options').then((o) => setSSO(!!o.oidc), () => {}) }, [])
  const submit = async (e) => {
    e.preventDefault()
    setErr('')
    try {
      onLogin(await call('POST', '/api/login', { username, password }))
    } catch (x) {
      setErr(x.message)
    }
  }
  return (
    <form className="login" onSubmit={submit}>
      <h1>stockcast</h1>
      <label>User <input name="username" autoComplete="username" value={username} onChange={(e) => setUser(e.target.value)} autoFocus /></label>
      <label>Password <input name="password" type="password" autoComplete="current-password" value={password} onChange={(e) => setPass(e.target.value)} /></label>
      <button type="submit">Log in</button>
      {sso && <a className="button sso" href="/api/oidc/login" data-testid="sso">Log in with SSO</a>}
      {err && <p className="error" role="alert">{err}</p>}
    </form>
  )
}

const pages = [
  ['overview', 'Overview'],
  ['series', 'Series'],
  ['proposals', 'Proposals'],
  ['quality', 'Data quality'],
  ['models', 'Models'],
  ['reports', 'Reports'],
  ['alerts', 'Alerts'],
]

// useAlertCount polls the alert counts (the header badge) every 15 s.
function useAlertCount(me) {
  const [n, setN] = useState(null)
  useEffect(() => {
    if (!me) return undefined
    const load = () => get('/api/alerts?page_size=0').then((a) => setN(a), () => {})
    load()
    const t = setInterval(load, 15000)
    return () => clearInterval(t)
  }, [me])
  return n
}

export default function App() {
  const [me, setMe] = useState(undefined)
  const route = useRoute()
  const alerts = useAlertCount(me)
  useEffect(() => {
    get('/api/me').then(login, () => setMe(null))
  }, [])
  function login(m) {
    setCSRF(m.csrf_token)
    setMe(m)
  }
  async function logout() {
    await call('POST', '/api/logout').catch(() => {})
    setCSRF('')
    setMe(null)
  }
  if (me === undefined) return null
  if (me === null) return <Login onLogin={login} />
  let body
  switch (route.page) {
    case 'series': body = <Series params={route.params} me={me} />; break
    case 'proposals': body = <Proposals me={me} />; break
    case 'quality': body = <Quality />; break
    case 'models': body = <Models />; break
    case 'reports': body = <Reports />; break
    case 'alerts': body = <Alerts />; break
    default: body = <Overview />
  }
  return (
    <>
      <header>
        <span className="brand">stockcast</span>
        <nav>
          {pages.map(([id, label]) => (
            <a key={id} href={`#/${id}`} className={route.page === id ? 'active' : ''}>{label}
              {id === 'alerts' && alerts && alerts.total > 0 && (
                <span className={alerts.critical > 0 ? 'badge' : 'badge warn'} data-testid="alert-badge" title={`${alerts.critical} critical`}>{alerts.total}</span>
              )}
            </a>
          ))}
        </nav>
        <span className="who" data-testid="who">{me.user} · {me.role}</span>
        <button className="link" onClick={logout}>Log out</button>
      </header>
      <main>{body}</main>
    </>
  )
}

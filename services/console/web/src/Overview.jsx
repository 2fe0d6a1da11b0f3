import { useEffect, useState } from 'react'
import { age, num } from './format.js'

// Overview: live numbers from the server-sent overview stream.
export default function Overview() {
  const [o, setO] = useState(null)
  const [connected, setConnected] = useState(false)
  const [updates, setUpdates] = useState(0)
  useEffect(() => {
    const es = new EventSource('/api/stream')
    es.addEventListener('overview', (e) => {
      setO(JSON.parse(e.data))
      setUpdates((n) => n + 1)
      setConnected(true)
    })
    es.onerror = () => setConnected(false)
    return () => es.close()
  }, [])
  if (!o) return <p className="muted">Connecting…</p>
  const { live, forecast_freshness: f, proposals_today: p } = o
  return (
    <section>
      <h2>Overview <span className={connected ? 'dot on' : 'dot'} title={connected ? 'live' : 'reconnecting'} />
        <small className="muted" data-testid="updated">updated {new Date(live.at || Date.now()).toLocaleTimeString()} · {updates} updates</small></h2>
      <div className="cards">
        <Card label="events / s (ingest)" value={num(live.events_per_second, 1)} testid="events-per-second" />
        <Card label="forecast freshness" value={age(f.forecasts ? f.age_seconds : null)} sub={`${num(f.forecasts)} forecasts, newest as of ${f.last_as_of || '–'}`} testid="freshness" />
        <Card label={`proposals on ${p.day || '–'}`} value={num(p.count)} sub={`${num(p.quantity)} units, ${num(p.at_risk)} with a projected stockout`} testid="proposals-today" />
        <Card label="rejected events (DLQ)" value={num(live.dlq_total)} testid="dlq-total" />
        <Card label="projected fill rate (7 days)" testid="fill-rate"
          value={o.kpis?.projected_fill_rate == null ? '–' : num(o.kpis.projected_fill_rate * 100, 1) + '%'}
          sub={o.kpis ? `${num(o.kpis.served_demand)} of ${num(o.kpis.expected_demand)} forecast units covered by stock and incoming orders` : 'waiting for the first evaluation'} />
        <Card label="stock value" value={o.kpis ? num(o.kpis.stock_value) : '–'} sub={o.kpis ? `${num(o.kpis.series)} series` : ''} testid="stock-value" />
        <Card label="alerts" value={num(o.alerts)} sub={`${num(o.critical_alerts)} critical`} testid="alerts-card" />
      </div>
      <h3>Services</h3>
      <table data-testid="services">
        <thead><tr><th>service</th><th>up</th><th className="n">consumed</th><th className="n">per second</th><th className="n">consumer lag</th><th className="n">rejected</th></tr></thead>
        <tbody>
          {(live.services || []).map((s) => (
            <tr key={s.name}>
              <td>{s.name}</td><td>{s.up ? 'yes' : <span className="error" title={s.scrape_error}>no</span>}</td>
              <td className="n">{num(s.consumed)}</td><td className="n">{num(s.per_second, 1)}</td>
              <td className="n">{num(s.lag)}</td><td className="n">{num(s.rejected)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <h3>DLQ by reason</h3>
      {live.dlq?.length ? (
        <table data-testid="dlq-reasons">
          <thead><tr><th>reason</th><th className="n">records</th></tr></thead>
          <tbody>{live.dlq.map((r) => <tr key={r.reason}><td>{r.reason}</td><td className="n">{num(r.count)}</td></tr>)}</tbody>
        </table>
      ) : <p className="muted">No rejected events.</p>}
      {o.errors?.length > 0 && <ul className="error">{o.errors.map((e) => <li key={e}>{e}</li>)}</ul>}
    </section>
  )
}

function Card({ label, value, sub, testid }) {
  return (
    <div className="card" data-testid={testid}>
      <div className="value">{value}</div>
      <div className="label">{label}</div>
      {sub && <div className="sub muted">{sub}</div>}
    </div>
  )
}

import { useEffect, useState } from 'react'
import { get, qs } from './api.js'
import { num, short } from './format.js'

const rules = [['', 'all rules'], ['STOCKOUT_WITHIN_LEAD_TIME', 'stockout within lead time'], ['FORECAST_BIAS', 'forecast bias'], ['DLQ_SPIKE', 'DLQ spike']]

// Alerts: the rules' current alerts (also published to alerts.v1), paged.
export default function Alerts() {
  const [rule, setRule] = useState('')
  const [page, setPage] = useState(1)
  const [d, setD] = useState(null)
  const [err, setErr] = useState('')
  const pageSize = 50
  useEffect(() => {
    get('/api/alerts?' + qs({ rule, page, page_size: pageSize })).then(setD, (e) => setErr(e.message))
  }, [rule, page])
  if (err) return <p className="error">{err}</p>
  if (!d) return <p className="muted">Loading…</p>
  const pages = Math.max(1, Math.ceil(d.matching / pageSize))
  return (
    <section>
      <h2>Alerts <small className="muted" data-testid="alerts-summary">{num(d.total)} alerts, {num(d.critical)} critical · {num(d.evaluations)} evaluations, last {d.evaluated_at ? new Date(d.evaluated_at).toLocaleTimeString() : '–'} · {num(d.published)} published to alerts.v1</small></h2>
      <div className="row">
        <select name="rule" value={rule} onChange={(e) => { setPage(1); setRule(e.target.value) }}>
          {rules.map(([v, l]) => <option key={v} value={v}>{l}</option>)}
        </select>
      </div>
      {d.error && <p className="error">{d.error}</p>}
      {d.alerts.length === 0 ? <p className="muted">No alerts.</p> : (
        <table data-testid="alerts">
          <thead><tr><th>severity</th><th>rule</th><th>subject</th><th>summary</th><th className="n">value</th><th className="n">threshold</th><th>observed</th></tr></thead>
          <tbody>{d.alerts.map((a) => (
            <tr key={a.alert_id} className={a.severity === 'CRITICAL' ? 'crit' : ''}>
              <td>{short(a.severity, '')}</td><td>{short(a.rule, '')}</td>
              <td>{a.sku ? <a href={`#/series?${qs({ key: a.subject })}`}>{a.subject}</a> : a.subject}</td>
              <td>{a.summary}</td><td className="n">{num(a.value, 2)}</td><td className="n">{num(a.threshold, 2)}</td>
              <td>{a.observed_at.slice(0, 16).replace('T', ' ')}</td>
            </tr>
          ))}</tbody>
        </table>
      )}
      <div className="pager">
        <button disabled={page <= 1} onClick={() => setPage(page - 1)}>‹ prev</button>
        <span data-testid="alerts-page">page {page} of {pages} · {num(d.matching)} alerts</span>
        <button disabled={page >= pages} onClick={() => setPage(page + 1)}>next ›</button>
      </div>
    </section>
  )
}

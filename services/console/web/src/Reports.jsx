import { useEffect, useState } from 'react'
import { get } from './api.js'
import { num } from './format.js'

// Reports: the daily inventory report now (KPIs and top risks, with
// downloads), and the scheduled reports written by the console.
export default function Reports() {
  const [r, setR] = useState(null)
  const [files, setFiles] = useState(null)
  const [err, setErr] = useState('')
  useEffect(() => {
    get('/api/reports/daily').then(setR, (e) => setErr(e.message))
    get('/api/reports').then(setFiles, (e) => setErr(e.message))
  }, [])
  const k = r?.kpis
  return (
    <section>
      <h2>Daily inventory report {k && <small className="muted">{k.day} · generated {r.generated_at.replace('T', ' ').replace('Z', ' UTC')}</small>}</h2>
      <div className="row">
        {['html', 'csv', 'pdf'].map((f) => (
          <a key={f} className="button" href={`/api/reports/daily?format=${f}&download=1` + (r ? '&generated_at=' + encodeURIComponent(r.generated_at) : '')} download>Download {f.toUpperCase()}</a>
        ))}
      </div>
      {err && <p className="error">{err}</p>}
      {!r ? <p className="muted">Building the report…</p> : (
        <>
          <div className="cards" data-testid="report-kpis">
            <Card label="stock value" value={num(k.stock_value, 2)} sub={`${num(k.series)} series, ${num(k.negative_on_hand)} below zero on the book`} testid="kpi-stock-value" />
            <Card label="projected fill rate (7 days)" value={k.projected_fill_rate == null ? '–' : num(k.projected_fill_rate * 100, 1) + '%'} sub={`${num(k.served_demand)} of ${num(k.expected_demand)} units`} testid="kpi-fill-rate" />
            <Card label={`proposals on ${k.day}`} value={num(k.proposals_today)} sub={`${num(k.proposals_open)} open, ${num(k.open_quantity)} units; ${num(k.incoming_orders)} orders incoming`} testid="kpi-proposals" />
            <Card label="stockout risks" value={num(k.stockout_risks)} sub="stockout within the lead time" testid="kpi-risks" />
          </div>
          <h3>Top risks</h3>
          {r.top_risks.length === 0 ? <p className="muted">No series projects a stockout within its lead time.</p> : (
            <table data-testid="top-risks">
              <thead><tr><th>sku</th><th>location</th><th>description</th><th className="n">on hand</th><th>stockout</th><th className="n">days</th><th className="n">lead time</th><th className="n">proposal</th></tr></thead>
              <tbody>{r.top_risks.map((x) => (
                <tr key={x.series_key}>
                  <td><a href={`#/series?key=${encodeURIComponent(x.series_key)}`}>{x.sku}</a></td><td>{x.location}</td><td>{x.description}</td>
                  <td className="n">{num(x.on_hand)}</td><td>{x.projected_stockout_day}</td><td className="n">{x.days_to_stockout}</td>
                  <td className="n">{x.lead_time_days}</td><td className="n">{num(x.proposal_quantity)} {x.proposal_status.replace('PROPOSAL_STATUS_', '').toLowerCase()}</td>
                </tr>
              ))}</tbody>
            </table>
          )}
        </>
      )}
      <h3>Scheduled reports</h3>
      {files && (files.files.length === 0 ? <p className="muted">{files.scheduled ? 'None written yet.' : 'No schedule: start the console with -reports.schedule and -reports.dir.'}</p> : (
        <table data-testid="report-files">
          <thead><tr><th>file</th><th className="n">bytes</th><th>written</th></tr></thead>
          <tbody>{files.files.map((f) => (
            <tr key={f.name}><td><a href={`/api/reports/files/${f.name}`}>{f.name}</a></td><td className="n">{num(f.size)}</td><td>{f.modified.slice(0, 19).replace('T', ' ')}</td></tr>
          ))}</tbody>
        </table>
      ))}
    </section>
  )
}

export function Card({ label, value, sub, testid }) {
  return (
    <div className="card" data-testid={testid}>
      <div className="value">{value}</div>
      <div className="label">{label}</div>
      {sub && <div className="sub muted">{sub}</div>}
    </div>
  )
}

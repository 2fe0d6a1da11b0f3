import { useEffect, useState } from 'react'
import { get } from './api.js'
import { num } from './format.js'

// Data quality: every DLQ reason with its newest samples.
export default function Quality() {
  const [d, setD] = useState(null)
  const [err, setErr] = useState('')
  useEffect(() => { get('/api/dlq').then(setD, (e) => setErr(e.message)) }, [])
  if (err) return <p className="error">{err}</p>
  if (!d) return <p className="muted">Loading…</p>
  return (
    <section>
      <h2>Data quality <small className="muted">{num(d.total)} rejected events</small></h2>
      {d.reasons.length === 0 && <p className="muted">No rejected events.</p>}
      {d.reasons.map((r) => (
        <details key={r.reason} className="reason" data-testid="dlq-reason">
          <summary><b>{r.reason}</b> · {num(r.count)} records</summary>
          <table>
            <thead><tr><th>topic</th><th>source</th><th>service</th><th>detail</th><th>key</th><th>value (start)</th></tr></thead>
            <tbody>{r.samples.map((s, i) => (
              <tr key={i}><td>{s.topic}</td><td>{s.source}</td><td>{s.service}</td><td>{s.detail}</td><td>{s.key}</td><td className="mono">{s.value}</td></tr>
            ))}</tbody>
          </table>
        </details>
      ))}
    </section>
  )
}

import { useEffect, useState } from 'react'
import { get } from './api.js'
import { num } from './format.js'
import { LineChart } from './charts.jsx'

const metrics = [['wrmsse', 'WRMSSE', 3], ['wspl', 'WSPL', 3], ['mase', 'MASE', 3], ['bias', 'bias', 3],
  ['coverage50', 'cov 50', 2], ['coverage90', 'cov 90', 2], ['coverage98', 'cov 98', 2]]

// Models: the registry (champion vs challengers, backtest metrics) and the
// live forecasts' accuracy by day.
export default function Models() {
  const [d, setD] = useState(null)
  const [err, setErr] = useState('')
  useEffect(() => { get('/api/models').then(setD, (e) => setErr(e.message)) }, [])
  if (err) return <p className="error">{err}</p>
  if (!d) return <p className="muted">Loading…</p>
  const c = d.champion
  const trained = [...d.models].reverse()
  return (
    <section>
      <h2>Models</h2>
      {d.registry_missing && <p className="muted">No model registry yet: run <code>stockcast train</code>.</p>}
      {c && <p data-testid="champion">Champion <b>{c.version}</b> (data set {c.data_set}), WRMSSE {num(c.wrmsse, 3)}, trained {c.created_at}.</p>}
      {d.models.length > 0 && (
        <>
          <h3>Backtests: champion vs challengers</h3>
          <table data-testid="models">
            <thead><tr><th>version</th><th>status</th><th>created</th><th>data set</th>{metrics.map(([k, l]) => <th key={k} className="n">{l}</th>)}<th className="n">vs champion</th><th className="n">train s</th></tr></thead>
            <tbody>{d.models.map((m) => (
              <tr key={m.version} className={m.status === 'champion' ? 'champ' : ''}>
                <td>{m.version}</td><td>{m.status}</td><td>{m.created_at}</td><td>{m.data_set}</td>
                {metrics.map(([k, , p]) => <td key={k} className="n">{num(m[k], p)}</td>)}
                <td className="n" title={m.champion_version}>{m.champion_wrmsse == null ? '–' : num(m.champion_wrmsse, 3)}</td>
                <td className="n">{num(m.train_seconds, 1)}</td>
              </tr>
            ))}</tbody>
          </table>
          <h3>WRMSSE by training run</h3>
          <LineChart testid="models-chart" points={trained.map((m) => ({ x: m.created_at.slice(0, 16), y: m.wrmsse, y2: m.champion_wrmsse }))} label="WRMSSE by run (blue), the champion's on the same days (red)" />
        </>
      )}
      <h3>Live accuracy by day <small className="muted">every series' forecasts made before the day, against what sold</small></h3>
      {d.accuracy.length === 0 ? <p className="muted">No complete day with forecasts yet.</p> : (
        <>
          <LineChart testid="accuracy-chart" points={d.accuracy.map((a) => ({ x: a.day, y: a.wape, y2: a.bias }))} label="WAPE (blue), bias (red)" />
          <table data-testid="accuracy">
            <thead><tr><th>day</th><th className="n">series</th><th className="n">forecast</th><th className="n">sold</th><th className="n">MAE</th><th className="n">WAPE</th><th className="n">bias</th></tr></thead>
            <tbody>{d.accuracy.map((a) => (
              <tr key={a.day}><td>{a.day}</td><td className="n">{num(a.days)}</td><td className="n">{num(a.forecast, 1)}</td><td className="n">{num(a.actual)}</td>
                <td className="n">{num(a.mae, 2)}</td><td className="n">{num(a.wape, 3)}</td><td className="n">{num(a.bias, 3)}</td></tr>
            ))}</tbody>
          </table>
        </>
      )}
      {d.errors?.length > 0 && <ul className="error">{d.errors.map((e) => <li key={e}>{e}</li>)}</ul>}
    </section>
  )
}

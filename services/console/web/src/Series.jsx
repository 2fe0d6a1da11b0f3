import { Fragment, useEffect, useState } from 'react'
import { call, get, qs } from './api.js'
import { num, short } from './format.js'
import { FanChart, StockChart } from './charts.jsx'

// Series explorer: search, then one series' history, forecast, projected
// stock, policy and events.
export default function Series({ params, me }) {
  const key = params.get('key')
  return (
    <section>
      <h2>Series</h2>
      <Search initial={params.get('q') || ''} />
      {key && <Detail key={key} seriesKey={key} me={me} />}
    </section>
  )
}

function Search({ initial }) {
  const [q, setQ] = useState(initial)
  const [hits, setHits] = useState(null)
  const [err, setErr] = useState('')
  const run = async (e) => {
    e?.preventDefault()
    setErr('')
    try { setHits((await get('/api/series?' + qs({ q }))).series) } catch (x) { setErr(x.message) }
  }
  useEffect(() => { if (initial) run() }, [])
  return (
    <div>
      <form className="row" onSubmit={run}>
        <input name="q" placeholder="SKU, location or description" value={q} onChange={(e) => setQ(e.target.value)} />
        <button type="submit">Search</button>
      </form>
      {err && <p className="error">{err}</p>}
      {hits && (hits.length === 0 ? <p className="muted">No series match.</p> : (
        <table className="hits" data-testid="series-hits">
          <thead><tr><th>sku</th><th>location</th><th>description</th><th className="n">demand</th><th className="n">lines</th></tr></thead>
          <tbody>{hits.map((h) => (
            <tr key={h.series_key}>
              <td><a href={`#/series?${qs({ q, key: h.series_key })}`}>{h.sku}</a></td>
              <td>{h.location}</td><td>{h.description}</td><td className="n">{num(h.demand)}</td><td className="n">{num(h.lines)}</td>
            </tr>
          ))}</tbody>
        </table>
      ))}
    </div>
  )
}

function Detail({ seriesKey, me }) {
  const [d, setD] = useState(null)
  const [err, setErr] = useState('')
  const load = () => get('/api/series/detail?' + qs({ key: seriesKey })).then(setD, (e) => setErr(e.message))
  useEffect(() => { load() }, [seriesKey])
  if (err) return <p className="error">{err}</p>
  if (!d) return <p className="muted">Loading {seriesKey}…</p>
  const f = d.forecast, p = d.latest_proposal
  return (
    <div className="detail" data-testid="series-detail">
      <h3>{d.sku} @ {d.location}</h3>
      <div className="cols">
        <div>
          <h4>History and forecast</h4>
          <FanChart history={d.history} forecast={f} />
          <h4>Projected stock</h4>
          <StockChart projected={d.projected} incoming={d.incoming} />
          {d.incoming.length > 0 && (
            <table data-testid="incoming">
              <thead><tr><th>incoming order</th><th className="n">open units</th><th>expected</th><th>supplier</th></tr></thead>
              <tbody>{d.incoming.map((o) => <tr key={o.purchase_order_id}><td>{o.purchase_order_id}</td><td className="n">{num(o.quantity)}</td><td>{o.expected_day}</td><td>{o.supplier_id}</td></tr>)}</tbody>
            </table>
          )}
        </div>
        <aside>
          <h4>Model</h4>
          {f ? (
            <dl data-testid="model">
              <dt>model</dt><dd>{f.model} {f.model_version}</dd>
              <dt>demand class</dt><dd>{f.demand_class}</dd>
              <dt>as of</dt><dd>{f.as_of}</dd>
              <dt>recent error</dt><dd data-testid="recent-error">{d.recent_error && d.recent_error.days > 0
                ? `MAE ${num(d.recent_error.mae, 2)}/day, bias ${d.recent_error.bias == null ? '–' : num(d.recent_error.bias * 100, 0) + '%'} over ${d.recent_error.days} days to ${d.error_to}`
                : `no complete day with a forecast (${d.error_from || '–'}…${d.error_to || '–'})`}</dd>
              <dt>why it changed</dt><dd>{short(f.reason_code, '')} {f.reason_detail} ({num(f.reason_change * 100, 1)}%)</dd>
              {f.previous_model_version && f.previous_model_version !== (f.global?.version || '') && (
                <><dt>previous model</dt><dd>{f.previous_model_version}</dd></>)}
              {f.components.filter((c) => !c.name.startsWith('contribution_') && !c.name.startsWith('weight_')).map((c) => <Fragment key={c.name}><dt>{c.name}</dt><dd>{num(c.value, 3)} {c.detail}</dd></Fragment>)}
            </dl>
          ) : null}
          {f && f.components.some((c) => c.name.startsWith('weight_')) && (
            <details data-testid="member-weights"><summary>ensemble member weights</summary><dl>
              {f.components.filter((c) => c.name.startsWith('weight_')).map((c) => <Fragment key={c.name}><dt>{c.name.slice(7)}</dt><dd>{num(c.value, 3)} {c.detail}</dd></Fragment>)}
            </dl></details>
          )}
          {f && f.factors?.length > 0 && (
            <><h4>What moved</h4>
              <table data-testid="factors"><thead><tr><th>feature</th><th className="n">contribution</th><th className="n">change</th></tr></thead>
                <tbody>{f.factors.map((a) => <tr key={a.feature}><td>{a.feature}</td><td className="n">{num(a.contribution, 3)}</td><td className="n">{num(a.change, 3)}</td></tr>)}</tbody></table></>
          )}
          {f && f.global && (
            <><h4>Global model <small className="muted">{f.global.version}, weight {num(f.global.weight, 2)}</small></h4>
              <table data-testid="attributions"><thead><tr><th>feature</th><th className="n">value</th><th className="n">contribution</th></tr></thead>
                <tbody>{f.global.attributions.map((a) => <tr key={a.feature}><td>{a.feature}</td><td className="n">{num(a.value, 2)}</td><td className="n">{num(a.contribution, 3)}</td></tr>)}</tbody></table></>
          )}
          {!f && <p className="muted">No forecast yet.</p>}
          {d.features && (<><h4>Features</h4><dl>
            <dt>mean 7 / 28 d</dt><dd>{num(d.features.mean_7, 2)} / {num(d.features.mean_28, 2)}</dd>
            <dt>history</dt><dd>{d.features.history_days} days, {num(d.features.events_applied)} events</dd>
            <dt>as of day</dt><dd>{d.features.as_of_day}</dd>
          </dl></>)}
          <h4>Latest proposal</h4>
          {p ? (
            <dl data-testid="latest-proposal">
              <dt>quantity</dt><dd>{num(p.quantity)} ({short(p.status, 'PROPOSAL_STATUS_')})</dd>
              <dt>reorder point</dt><dd>{num(p.reorder_point, 1)}</dd>
              <dt>position</dt><dd>{num(p.inventory_position, 1)} = {num(p.on_hand)} on hand + {num(p.on_order)} on order</dd>
              <dt>stockout</dt><dd>{p.projected_stockout_day || 'none in horizon'}</dd>
              <dt>arrival</dt><dd>{p.expected_arrival_day}</dd>
            </dl>
          ) : <p className="muted">No proposal.</p>}
          <PolicyForm d={d} me={me} onSaved={load} />
        </aside>
      </div>
      <h4>Events</h4>
      <table data-testid="events">
        <thead><tr><th>time</th><th>kind</th><th className="n">quantity</th><th>ref</th><th>detail</th></tr></thead>
        <tbody>{d.events.map((e, i) => (
          <tr key={i}><td>{e.at}</td><td>{e.kind}</td><td className="n">{num(e.quantity, 2)}</td><td>{e.ref}</td><td>{e.detail}</td></tr>
        ))}</tbody>
      </table>
      {d.errors?.length > 0 && <ul className="error">{d.errors.map((e) => <li key={e}>{e}</li>)}</ul>}
    </div>
  )
}

const policyFields = [
  ['service_level', 'service level', 0.01], ['lead_time_days', 'lead time (days)', 1],
  ['review_period_days', 'review period (days)', 1], ['order_cover_days', 'order cover (days)', 1],
  ['moq', 'MOQ', 1], ['pack_size', 'pack size', 1], ['max_order', 'max order', 1],
]

// PolicyForm edits the series' replenishment policy through the
// replenishment API; viewers see it read-only.
function PolicyForm({ d, me, onSaved }) {
  const [p, setP] = useState(d.policy)
  const [msg, setMsg] = useState('')
  useEffect(() => setP(d.policy), [d.policy]) // reloaded after a save
  if (!p) return null
  const canEdit = me.role !== 'viewer'
  const save = async (e) => {
    e.preventDefault()
    setMsg('')
    try {
      await call('PUT', '/api/policy', { ...p, sku: d.sku, location: d.location })
      setMsg('saved: applies from the next event')
      onSaved()
    } catch (x) { setMsg(x.message) }
  }
  return (
    <form className="policy" onSubmit={save} data-testid="policy">
      <h4>Policy <small className="muted">({p.source})</small></h4>
      {policyFields.map(([k, label, step]) => (
        <label key={k}>{label}
          <input type="number" step={step} name={k} value={p[k]} disabled={!canEdit}
            onChange={(e) => setP({ ...p, [k]: Number(e.target.value) })} />
        </label>
      ))}
      {canEdit ? <button type="submit">Save policy</button> : <p className="muted">Planners and admins change policies.</p>}
      {msg && <p role="status">{msg}</p>}
    </form>
  )
}

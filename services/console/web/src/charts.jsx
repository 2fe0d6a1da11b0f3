// Hand-written SVG charts: two small charts do not need a charting
// library's weight on first load.
const W = 760, H = 260, PAD = { l: 48, r: 12, t: 12, b: 28 }

const dayMs = 86400000
const toDay = (s) => Math.round(Date.parse(s + 'T00:00:00Z') / dayMs)
const fromDay = (d) => new Date(d * dayMs).toISOString().slice(0, 10)

function scale(d0, d1, r0, r1) {
  const k = d1 === d0 ? 0 : (r1 - r0) / (d1 - d0)
  return (v) => r0 + (v - d0) * k
}

function ticks(lo, hi, n = 4) {
  if (hi <= lo) return [lo]
  const raw = (hi - lo) / n
  const mag = 10 ** Math.floor(Math.log10(raw))
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw)
  const out = []
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9; v += step) out.push(+v.toFixed(6))
  return out
}

function Axes({ x, y, xs, ys, xlabel }) {
  return (
    <g className="axes">
      {ys.map((v) => (
        <g key={'y' + v}>
          <line x1={PAD.l} x2={W - PAD.r} y1={y(v)} y2={y(v)} className="grid" />
          <text x={PAD.l - 6} y={y(v) + 4} textAnchor="end">{v}</text>
        </g>
      ))}
      {xs.map((d) => (
        <text key={'x' + d} x={x(d)} y={H - 8} textAnchor="middle">{fromDay(d).slice(5)}</text>
      ))}
      {xlabel && <text x={W - PAD.r} y={PAD.t + 10} textAnchor="end" className="label">{xlabel}</text>}
    </g>
  )
}

const path = (pts) => pts.map(([a, b], i) => `${i ? 'L' : 'M'}${a.toFixed(1)},${b.toFixed(1)}`).join('')

// FanChart: daily history (bars) and the forecast mean with its quantile
// bands, widest band palest.
export function FanChart({ history, forecast, days = 84 }) {
  const fc = forecast?.daily || []
  const levels = forecast?.quantile_levels || []
  const hist = history.slice(-days)
  if (!hist.length && !fc.length) return <p className="muted">No history or forecast yet.</p>
  const allDays = [...hist.map((h) => toDay(h.day)), ...fc.map((f) => toDay(f.day))]
  const d0 = Math.min(...allDays), d1 = Math.max(...allDays)
  let hi = 1
  for (const h of hist) hi = Math.max(hi, h.quantity)
  for (const f of fc) hi = Math.max(hi, f.mean, ...(f.quantiles || []))
  const x = scale(d0 - 0.5, d1 + 0.5, PAD.l, W - PAD.r)
  const y = scale(Math.min(0, ...hist.map((h) => h.quantity)), hi * 1.05, H - PAD.b, PAD.t)
  const bw = Math.max(1, (x(d0 + 1) - x(d0)) * 0.7)
  const bands = []
  for (let i = 0; i < Math.floor(levels.length / 2); i++) {
    const j = levels.length - 1 - i
    const top = fc.map((f) => [x(toDay(f.day)), y(f.quantiles[j])])
    const bot = fc.map((f) => [x(toDay(f.day)), y(f.quantiles[i])]).reverse()
    bands.push(
      <path key={i} d={path([...top, ...bot]) + 'Z'} className="band" style={{ opacity: 0.18 + 0.14 * i }}>
        <title>{`${Math.round(levels[i] * 100)}–${Math.round(levels[j] * 100)}% band`}</title>
      </path>,
    )
  }
  const xs = ticks(d0, d1, 6).map(Math.round)
  return (
    <svg viewBox={`0 0 ${W} ${H}`} className="chart" data-testid="fan-chart" role="img" aria-label="history and forecast">
      <Axes x={x} y={y} xs={xs} ys={ticks(0, hi * 1.05)} xlabel="units / day" />
      {hist.map((h) => (
        <rect key={h.day} x={x(toDay(h.day)) - bw / 2} width={bw} y={Math.min(y(h.quantity), y(0))}
          height={Math.abs(y(0) - y(h.quantity))} className={h.stockout ? 'bar stockout' : 'bar'} data-testid="history-bar">
          <title>{`${h.day}: ${h.quantity}${h.stockout ? ' (stockout)' : ''}`}</title>
        </rect>
      ))}
      {bands}
      {fc.length > 0 && <path d={path(fc.map((f) => [x(toDay(f.day)), y(f.mean)]))} className="mean" data-testid="forecast-mean" />}
    </svg>
  )
}

// StockChart: projected inventory position (expected and pessimistic)
// against the reorder point; open purchase orders marked on the day they
// are expected (they are already in the position, as on order).
export function StockChart({ projected, incoming = [] }) {
  if (!projected.length) return <p className="muted">No projection: the series needs a forecast and a proposal.</p>
  const ds = projected.map((p) => toDay(p.day))
  const d0 = Math.min(...ds), d1 = Math.max(...ds)
  const vals = projected.flatMap((p) => [p.expected, p.pessimistic, p.reorder_point])
  const lo = Math.min(0, ...vals), hi = Math.max(1, ...vals)
  const x = scale(d0, d1, PAD.l, W - PAD.r)
  const y = scale(lo, hi * 1.05, H - PAD.b, PAD.t)
  const line = (k) => path(projected.map((p) => [x(toDay(p.day)), y(p[k])]))
  return (
    <svg viewBox={`0 0 ${W} ${H}`} className="chart" data-testid="stock-chart" role="img" aria-label="projected stock">
      <Axes x={x} y={y} xs={ticks(d0, d1, 6).map(Math.round)} ys={ticks(lo, hi * 1.05)} xlabel="inventory position" />
      <line x1={PAD.l} x2={W - PAD.r} y1={y(0)} y2={y(0)} className="zero" />
      <path d={line('reorder_point')} className="rop" />
      <path d={line('pessimistic')} className="pess" />
      <path d={line('expected')} className="mean" />
      {incoming.filter((o) => toDay(o.expected_day) >= d0 && toDay(o.expected_day) <= d1).map((o) => (
        <g key={o.purchase_order_id} data-testid="incoming-order">
          <line x1={x(toDay(o.expected_day))} x2={x(toDay(o.expected_day))} y1={PAD.t} y2={H - PAD.b} className="po" />
          <text x={x(toDay(o.expected_day)) + 3} y={PAD.t + 50} className="l-po">{`PO ${o.purchase_order_id}: +${o.quantity}`}</text>
          <title>{`${o.purchase_order_id}: ${o.quantity} units expected ${o.expected_day}${o.supplier_id ? ' from ' + o.supplier_id : ''}`}</title>
        </g>
      ))}
      <g className="legend" transform={`translate(${PAD.l + 8},${PAD.t + 4})`}>
        <text y="8" className="l-mean">— expected</text>
        <text y="22" className="l-pess">— pessimistic (top quantile)</text>
        <text y="36" className="l-rop">— reorder point</text>
        {incoming.length > 0 && <text y="50" className="l-po">| incoming orders</text>}
      </g>
    </svg>
  )
}

// LineChart: one or two series over categorical x (days), nulls skipped.
export function LineChart({ points, label, testid }) {
  const pts = points.filter((p) => p.y != null || p.y2 != null)
  if (!pts.length) return <p className="muted">Nothing to chart.</p>
  const vals = pts.flatMap((p) => [p.y, p.y2]).filter((v) => v != null)
  const lo = Math.min(0, ...vals), hi = Math.max(0.001, ...vals)
  const x = scale(0, Math.max(1, pts.length - 1), PAD.l, W - PAD.r)
  const y = scale(lo, hi * 1.05, H - PAD.b, PAD.t)
  const seg = (k) => path(pts.map((p, i) => [i, p[k]]).filter(([, v]) => v != null).map(([i, v]) => [x(i), y(v)]))
  const step = Math.max(1, Math.ceil(pts.length / 8))
  return (
    <svg viewBox={`0 0 ${W} ${H}`} className="chart" data-testid={testid} role="img" aria-label={label}>
      <g className="axes">
        {ticks(lo, hi * 1.05).map((v) => (
          <g key={'y' + v}><line x1={PAD.l} x2={W - PAD.r} y1={y(v)} y2={y(v)} className="grid" /><text x={PAD.l - 6} y={y(v) + 4} textAnchor="end">{v}</text></g>
        ))}
        {pts.map((p, i) => (i % step === 0 ? <text key={i} x={x(i)} y={H - 8} textAnchor="middle">{String(p.x).slice(5)}</text> : null))}
        <text x={W - PAD.r} y={PAD.t + 10} textAnchor="end" className="label">{label}</text>
      </g>
      <path d={seg('y')} className="mean" />
      <path d={seg('y2')} className="pess" />
      {pts.map((p, i) => (p.y != null ? <circle key={i} cx={x(i)} cy={y(p.y)} r="3" className="pt"><title>{`${p.x}: ${p.y}`}</title></circle> : null))}
      {pts.map((p, i) => (p.y2 != null ? <circle key={'b' + i} cx={x(i)} cy={y(p.y2)} r="3" className="pt2"><title>{`${p.x}: ${p.y2}`}</title></circle> : null))}
    </svg>
  )
}

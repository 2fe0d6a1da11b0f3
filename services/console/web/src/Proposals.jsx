import { Fragment, useEffect, useState } from 'react'
import { call, get, qs } from './api.js'
import { num, short } from './format.js'

const cols = [
  ['decided_at', 'decided'], ['sku', 'sku'], ['location', 'location'], ['quantity', 'qty'],
  ['reorder_point', 'reorder pt'], ['inventory_position', 'position'], ['projected_stockout_day', 'stockout'], ['status', 'status'],
]

// Proposals: filter, sort, page, export; planners and admins approve (with
// an adjusted quantity, validated by the replenishment service against the
// policy's MOQ, pack size and maximum) or reject.
export default function Proposals({ me }) {
  const canReview = me && me.role !== 'viewer'
  const [reload, setReload] = useState(0)
  const [f, setF] = useState({ sku: '', location: '', status: '' })
  const [applied, setApplied] = useState(f)
  const [sort, setSort] = useState({ sort: 'decided_at', order: 'desc' })
  const [page, setPage] = useState(1)
  const [d, setD] = useState(null)
  const [err, setErr] = useState('')
  const pageSize = 50
  const query = { ...applied, ...sort }
  useEffect(() => {
    setErr('')
    const shown = `${sort.sort}:${sort.order}:${page}`
    get('/api/proposals?' + qs({ ...query, page, page_size: pageSize })).then((r) => setD({ ...r, shown }), (e) => setErr(e.message))
  }, [applied, sort, page, reload])
  const by = (c) => { setPage(1); setSort({ sort: c, order: sort.sort === c && sort.order === 'desc' ? 'asc' : 'desc' }) }
  const pages = d ? Math.max(1, Math.ceil(d.total / pageSize)) : 1
  return (
    <section>
      <h2>Proposals</h2>
      <form className="row" onSubmit={(e) => { e.preventDefault(); setPage(1); setApplied(f) }}>
        <input name="sku" placeholder="sku" value={f.sku} onChange={(e) => setF({ ...f, sku: e.target.value })} />
        <input name="location" placeholder="location" value={f.location} onChange={(e) => setF({ ...f, location: e.target.value })} />
        <select name="status" value={f.status} onChange={(e) => setF({ ...f, status: e.target.value })}>
          <option value="">any status</option><option value="proposed">proposed</option>
          <option value="approved">approved</option><option value="rejected">rejected</option>
        </select>
        <button type="submit">Filter</button>
        <a className="button" href={'/api/proposals.csv?' + qs(query)} download="proposals.csv">Export CSV</a>
      </form>
      {err && <p className="error">{err}</p>}
      {d && (
        <>
          <table data-testid="proposals" data-shown={d.shown}>
            <thead><tr>{cols.map(([c, label]) => (
              <th key={c} className={['quantity', 'reorder_point', 'inventory_position'].includes(c) ? 'n sortable' : 'sortable'} onClick={() => by(c)}>
                {label}{sort.sort === c ? (sort.order === 'desc' ? ' ▾' : ' ▴') : ''}
              </th>
            ))}<th>constraints</th>{canReview && <th>review</th>}</tr></thead>
            <tbody>{d.proposals.map((p) => (
              <Row key={p.proposal_id} p={p} canReview={canReview} onDone={() => setReload((n) => n + 1)} />
            ))}</tbody>
          </table>
          <div className="pager">
            <button disabled={page <= 1} onClick={() => setPage(page - 1)}>‹ prev</button>
            <span data-testid="page">page {page} of {pages} · {num(d.total)} proposals</span>
            <button disabled={page >= pages} onClick={() => setPage(page + 1)}>next ›</button>
          </div>
        </>
      )}
    </section>
  )
}

// Row is one proposal; a proposed one gets a quantity box, Approve and
// Reject for planners and admins, and the service's refusal inline.
function Row({ p, canReview, onDone }) {
  const [qty, setQty] = useState(String(p.quantity))
  const [err, setErr] = useState('')
  const [busy, setBusy] = useState(false)
  const status = short(p.status, 'PROPOSAL_STATUS_')
  const act = async (what) => {
    setErr('')
    setBusy(true)
    try {
      const body = what === 'approve' && Number(qty) !== p.quantity ? { quantity: Number(qty) } : {}
      await call('POST', `/api/proposals/${encodeURIComponent(p.proposal_id)}/${what}`, body)
      onDone()
    } catch (x) {
      setErr(x.message)
    } finally {
      setBusy(false)
    }
  }
  const cols = 9 + (canReview ? 1 : 0)
  return (
    <Fragment>
      <tr data-proposal={p.proposal_id}>
        <td>{p.decided_at}</td>
        <td><a href={`#/series?${qs({ key: p.series_key })}`}>{p.sku}</a></td>
        <td>{p.location}</td><td className="n">{num(p.quantity)}</td><td className="n">{num(p.reorder_point, 1)}</td>
        <td className="n">{num(p.inventory_position, 1)}</td><td>{p.projected_stockout_day}</td>
        <td data-testid="status">{status}{status === 'approved' && ` ${num(p.approved_quantity)}`}{p.decided_by && <small className="muted"> by {p.decided_by}</small>}</td>
        <td className="muted">moq {num(p.moq)} · pack {num(p.pack_size)}{p.max_order > 0 && ` · max ${num(p.max_order)}`}</td>
        {canReview && (
          <td className="actions">{status === 'proposed' && (
            <>
              <input type="number" name="quantity" aria-label="quantity" value={qty} onChange={(e) => setQty(e.target.value)} />
              <button disabled={busy} onClick={() => act('approve')}>Approve</button>
              <button disabled={busy} className="reject" onClick={() => act('reject')}>Reject</button>
            </>
          )}</td>
        )}
      </tr>
      {err && <tr className="row-error"><td colSpan={cols} role="alert" data-testid="review-error">{err}</td></tr>}
    </Fragment>
  )
}

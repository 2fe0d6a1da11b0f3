import { useEffect, useState } from 'react'
import { get, qs } from './api.js'
import { num, short } from './format.js'

const cols = [
  ['decided_at', 'decided'], ['sku', 'sku'], ['location', 'location'], ['quantity', 'qty'],
  ['reorder_point', 'reorder pt'], ['inventory_position', 'position'], ['projected_stockout_day', 'stockout'], ['status', 'status'],
]

// Proposals: filter, sort, page, export.
export default function Proposals() {
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
  }, [applied, sort, page])
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
            ))}</tr></thead>
            <tbody>{d.proposals.map((p) => (
              <tr key={p.proposal_id}>
                <td>{p.decided_at}</td>
                <td><a href={`#/series?${qs({ key: p.series_key })}`}>{p.sku}</a></td>
                <td>{p.location}</td><td className="n">{num(p.quantity)}</td><td className="n">{num(p.reorder_point, 1)}</td>
                <td className="n">{num(p.inventory_position, 1)}</td><td>{p.projected_stockout_day}</td>
                <td>{short(p.status, 'PROPOSAL_STATUS_')}</td>
              </tr>
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

export const num = (x, d = 0) =>
  x == null || Number.isNaN(x) ? '–' : Number(x).toLocaleString('en-GB', { maximumFractionDigits: d, minimumFractionDigits: d })

export function age(sec) {
  if (sec == null) return '–'
  if (sec < 90) return `${sec}s`
  if (sec < 5400) return `${Math.round(sec / 60)}m`
  if (sec < 172800) return `${Math.round(sec / 3600)}h`
  return `${Math.round(sec / 86400)}d`
}

export const short = (s, prefix) => (s || '').replace(prefix, '').toLowerCase()

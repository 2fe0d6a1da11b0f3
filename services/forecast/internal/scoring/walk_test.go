package scoring

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/stockcast/stockcast/pkg/globalmodel"
)

// BenchmarkDayClosedWalk compares the tree walks of a global forecast with
// the benchmark model, interleaved in one loop so that both see the same
// load: the new days' margins (1: a day's first event; 28: a new model)
// and row 0's attributions by margins and contributions one after the
// other (the baseline), and by marginsContrib in one pass; it reports
// each one's thread CPU and the ratio.
func BenchmarkDayClosedWalk(b *testing.B) {
	src := testSeries{start: 19000, demand: weekly(2000)}
	m := benchModel(b, src)
	ds := trainingSet(src, 600)
	panel := globalmodel.NewPanel(ds)
	cols := len(m.names)
	const days = 64
	rows := make([]float64, days*cols)
	for h := range days {
		panel.Row(0, 500+h, rows[h*cols:(h+1)*cols])
	}
	for _, n := range []int{1, 28} {
		b.Run(fmt.Sprintf("rows=%d", n), func(b *testing.B) {
			out := make([]float64, n)
			contrib := make([]float64, cols)
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			var base, one time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				h := i % (days - 28)
				row0, new := rows[h*cols:(h+1)*cols], rows[(h+28-n)*cols:(h+28)*cols]
				c0, _ := threadCPU()
				m.stable.margins(new, cols, out)
				m.stable.contributions(row0, contrib)
				c1, _ := threadCPU()
				m.stable.marginsContrib(new, cols, out, row0, contrib)
				c2, _ := threadCPU()
				base, one = base+c1-c0, one+c2-c1
			}
			b.ReportMetric(float64(base.Nanoseconds())/1e3/float64(b.N), "separate-cpu-µs")
			b.ReportMetric(float64(one.Nanoseconds())/1e3/float64(b.N), "onepass-cpu-µs")
			b.ReportMetric(float64(one)/float64(base), "ratio")
		})
	}
}

// marginsFourRows is session 3's walk, the baseline of
// BenchmarkMarginsWalk: four rows side by side, a branch at each step.
func (f *forest) marginsFourRows(rows []float64, cols int, out []float64) {
	for r := range out {
		out[r] = f.base
	}
	nodes := f.nodes
	step := func(i int32, row []float64) int32 {
		n := &nodes[i]
		if row[n.feat] > n.thr {
			return n.kids + 1
		}
		return n.kids
	}
	n4 := len(out) &^ 3
	for t, root := range f.roots {
		depth := f.depth[t]
		for r := 0; r < n4; r += 4 {
			r0 := rows[r*cols : (r+1)*cols : (r+1)*cols]
			r1 := rows[(r+1)*cols : (r+2)*cols : (r+2)*cols]
			r2 := rows[(r+2)*cols : (r+3)*cols : (r+3)*cols]
			r3 := rows[(r+3)*cols : (r+4)*cols : (r+4)*cols]
			i0, i1, i2, i3 := root, root, root, root
			for range depth {
				i0, i1, i2, i3 = step(i0, r0), step(i1, r1), step(i2, r2), step(i3, r3)
			}
			out[r] += f.inner[i0]
			out[r+1] += f.inner[i1]
			out[r+2] += f.inner[i2]
			out[r+3] += f.inner[i3]
		}
		for r := n4; r < len(out); r++ {
			row := rows[r*cols : (r+1)*cols : (r+1)*cols]
			i := root
			for n := &nodes[i]; n.kids != i; n = &nodes[i] {
				i = step(i, row)
			}
			out[r] += f.inner[i]
		}
	}
}

// BenchmarkMarginsWalk compares, in one loop, the margins of 1 and 28 rows
// of every tree of the benchmark model by session 3's four-row walk with
// branches (the baseline) and by margins (all rows side by side, without
// branches from branchFreeRows rows on), and
// reports each one's thread CPU and the ratio (the margins are compared
// too: equal bit for bit).
func BenchmarkMarginsWalk(b *testing.B) {
	src := testSeries{start: 19000, demand: weekly(2000)}
	m := benchModel(b, src)
	all := newForest(m.gbt)
	ds := trainingSet(src, 600)
	panel := globalmodel.NewPanel(ds)
	cols := len(m.names)
	const days = 64
	rows := make([]float64, days*cols)
	for h := range days {
		panel.Row(0, 500+h, rows[h*cols:(h+1)*cols])
	}
	for _, n := range []int{1, 4, 28} {
		b.Run(fmt.Sprintf("rows=%d", n), func(b *testing.B) {
			want, got := make([]float64, n), make([]float64, n)
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			var base, now time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				h := i % (days - 28)
				new := rows[h*cols : (h+n)*cols]
				c0, _ := threadCPU()
				all.marginsFourRows(new, cols, want)
				c1, _ := threadCPU()
				all.margins(new, cols, got)
				c2, _ := threadCPU()
				base, now = base+c1-c0, now+c2-c1
				for r := range got {
					if got[r] != want[r] {
						b.Fatalf("row %d: %v, four-row walk %v", r, got[r], want[r])
					}
				}
			}
			b.ReportMetric(float64(base.Nanoseconds())/1e3/float64(b.N), "fourrow-cpu-µs")
			b.ReportMetric(float64(now.Nanoseconds())/1e3/float64(b.N), "margins-cpu-µs")
			b.ReportMetric(float64(now)/float64(base), "ratio")
		})
	}
}

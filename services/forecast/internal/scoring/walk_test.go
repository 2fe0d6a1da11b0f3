package scoring

import (
	"fmt"
	"runtime"
	"testing"
	"time"
	"unsafe"

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

// marginsBranchFree is 4afc991's walk, BenchmarkMarginsWalk's
// alternative: all rows side by side level by level, the next node
// computed from the comparison without a branch (b2i).
func (f *forest) marginsBranchFree(rows []float64, cols int, out []float64) {
	for r := range out {
		out[r] = f.base
	}
	nodes, inner := f.nodes, f.inner
	idx := make([]int32, len(out))
	rows = rows[:len(out)*cols]
	for t, root := range f.roots {
		for r := range idx {
			idx[r] = root
		}
		for range f.depth[t] {
			for r, i := range idx {
				n := &nodes[i]
				idx[r] = n.kids + b2i(rows[r*cols+int(n.feat)] > n.thr)
			}
		}
		for r, i := range idx {
			out[r] += inner[i]
		}
	}
}

// b2i is 1 for true, 0 for false, without a branch (the compiler keeps a
// branch for a condition that chooses a load's address).
func b2i(b bool) int32 { return int32(*(*uint8)(unsafe.Pointer(&b))) }

// BenchmarkMarginsWalk compares, in one loop, the margins of 1, 4 and 28
// rows of every tree of the benchmark model by margins (four rows side by
// side, a branch at each step: the baseline) and by 4afc991's branch-free
// walk of all rows side by side, and reports each one's thread CPU and
// the ratio (the margins are compared too: equal bit for bit). Either
// walk goes first every other iteration. The walks alone are not the
// service's: BenchmarkScore's model_swapped/global, where the scorer's
// other work runs between them, is the comparison that decided
// (docs/forecasting.md).
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
				// each walk first every other iteration: the second reads
				// the nodes the first brought into the cache (with a fixed
				// order, session 5 measured the branch-free walk second at
				// 0.82-0.84 of this one)
				if i%2 == 0 {
					c0, _ := threadCPU()
					all.margins(new, cols, want)
					c1, _ := threadCPU()
					all.marginsBranchFree(new, cols, got)
					c2, _ := threadCPU()
					base, now = base+c1-c0, now+c2-c1
				} else {
					c0, _ := threadCPU()
					all.marginsBranchFree(new, cols, got)
					c1, _ := threadCPU()
					all.margins(new, cols, want)
					c2, _ := threadCPU()
					base, now = base+c2-c1, now+c1-c0
				}
				for r := range got {
					if got[r] != want[r] {
						b.Fatalf("row %d: branch-free %v, margins %v", r, got[r], want[r])
					}
				}
			}
			b.ReportMetric(float64(base.Nanoseconds())/1e3/float64(b.N), "margins-cpu-µs")
			b.ReportMetric(float64(now.Nanoseconds())/1e3/float64(b.N), "branchfree-cpu-µs")
			b.ReportMetric(float64(now)/float64(base), "ratio")
		})
	}
}

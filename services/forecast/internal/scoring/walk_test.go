package scoring

import (
	"runtime"
	"testing"
	"time"

	"github.com/stockcast/stockcast/pkg/globalmodel"
)

// BenchmarkDayClosedWalk compares the tree walks of a day's first event
// with the benchmark model, interleaved in one loop so that both see the
// same load: one new day's margins and row 0's attributions by margins
// and contributions one after the other (the baseline), and by
// marginsContrib in one pass; it reports each one's thread CPU and the
// ratio.
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
	out := make([]float64, 1)
	contrib := make([]float64, cols)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var base, one time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h := i % (days - 28)
		row0, row := rows[h*cols:(h+1)*cols], rows[(h+27)*cols:(h+28)*cols]
		c0, _ := threadCPU()
		m.stable.margins(row, cols, out)
		m.stable.contributions(row0, contrib)
		c1, _ := threadCPU()
		m.stable.marginsContrib(row, cols, out, row0, contrib)
		c2, _ := threadCPU()
		base, one = base+c1-c0, one+c2-c1
	}
	b.ReportMetric(float64(base.Nanoseconds())/1e3/float64(b.N), "separate-cpu-µs")
	b.ReportMetric(float64(one.Nanoseconds())/1e3/float64(b.N), "onepass-cpu-µs")
	b.ReportMetric(float64(one)/float64(base), "ratio")
}

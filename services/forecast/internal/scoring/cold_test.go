package scoring

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"reflect"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/stockcast/stockcast/pkg/forecasting"
	featurev1 "github.com/stockcast/stockcast/proto/stockcast/feature/v1"
)

// TestColdRoundTrip: the compact form of real scored series (M5 tiny,
// with stockout days, with and without a global model part) decodes to
// the same series, bit for bit (state, window, summary, days, part), and
// cut short it does not decode.
func TestColdRoundTrip(t *testing.T) {
	src := m5Source{ds: loadM5Tiny(t), histDays: 300}
	m, _ := testModel(t, testSeries{start: 19000, demand: weekly(400)})
	const n = 40
	sc := New(testConfig(n), src, fixedClock)
	sc.cache.keepDecoded = true
	for _, withModel := range []bool{false, true} {
		if withModel {
			sc.SetModel(m)
		}
		// a rebuild from the history, then two closed days from the
		// snapshot, one a stockout
		for _, off := range []int{-20, -18} {
			for k := range n {
				snap := src.snapshot(k, off, 11, 0.4)
				snap.StockoutDays = []int32{53}
				score(t, sc, snap)
			}
		}
		var scratch []byte
		globals := 0
		for el := sc.cache.hot.Front(); el != nil; el = el.Next() {
			s := el.Value.(*series)
			var cs *coldSeries
			cs, scratch = encodeCold(s, scratch)
			got := cs.decode()
			want := *s
			want.unkept = false
			// the global part: a new copy, the same bits (NaN prices and
			// feature values: not DeepEqual)
			if !samePart(got.global, want.global) {
				t.Fatalf("%s: the decoded global part differs", s.key)
			}
			if got.global != nil && got.global == want.global {
				t.Fatalf("%s: the decoded global part is the series'", s.key)
			}
			got.global, want.global = nil, nil
			if got.state != want.state || got.win != want.win || got.prev != want.prev || !reflect.DeepEqual(*got, want) {
				t.Fatalf("%s: the decoded series differs", s.key)
			}
			got.global = s.global
			if want.win.censored == [len(want.win.censored)]uint64{} {
				t.Fatalf("%s: no censored day in the window", s.key)
			}
			if got.global != nil {
				globals++
			}
			for cut := range len(cs.packed) {
				short := *cs
				short.packed = cs.packed[:cut]
				if err := short.decodeInto(&series{}); err == nil {
					t.Fatalf("%s: cut at %d of %d bytes, decoded", s.key, cut, len(cs.packed))
				}
			}
			long := *cs
			long.packed = append(append([]byte(nil), cs.packed...), 0)
			if err := long.decodeInto(&series{}); err == nil {
				t.Fatalf("%s: decoded with a byte after it", s.key)
			}
		}
		if want := map[bool]int{false: 0, true: n}[withModel]; globals != want {
			t.Errorf("model %v: %d series with a global part, want %d", withModel, globals, want)
		}
	}
}

// samePart tells whether two global parts are equal field by field, every
// field (a field added to globalPart is compared too, or fails here until
// sameBits knows its kind): floats bit for bit (a NaN price or feature
// value is equal to itself), nil slices nil; pointers (the explanation a
// cached part no longer has) nil in both.
func samePart(a, b *globalPart) bool {
	if a == nil || b == nil {
		return a == b
	}
	return sameBits(reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem())
}

func sameBits(a, b reflect.Value) bool {
	switch a.Kind() {
	case reflect.Float64:
		return math.Float64bits(a.Float()) == math.Float64bits(b.Float())
	case reflect.Int, reflect.Int32, reflect.Int64:
		return a.Int() == b.Int()
	case reflect.Bool:
		return a.Bool() == b.Bool()
	case reflect.String:
		return a.String() == b.String()
	case reflect.Pointer:
		return a.IsNil() && b.IsNil()
	case reflect.Slice:
		if a.IsNil() != b.IsNil() || a.Len() != b.Len() {
			return false
		}
		for i := range a.Len() {
			if !sameBits(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Struct:
		for i := range a.NumField() {
			if !sameBits(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	}
	return false
}

// TestColdSeriesForecastsEqual: a scorer that keeps one series as it is
// (the others cold, decoded on their next event) publishes byte for byte
// the forecasts of one that keeps every series as it is, over days of
// real series with stockouts, same-day events and a global model loaded
// on the way; and it holds the rest cold.
func TestColdSeriesForecastsEqual(t *testing.T) {
	src := m5Source{ds: loadM5Tiny(t), histDays: 200}
	m, _ := testModel(t, testSeries{start: 19000, demand: weekly(400)})
	const n = 15
	decoded, cold := testConfig(n), testConfig(n)
	decoded.LatestSeries, cold.LatestSeries = 1, 1
	scorers := []*Scorer{New(decoded, src, fixedClock), New(cold, src, fixedClock)}
	scorers[0].cache.keepDecoded = true
	enc := proto.MarshalOptions{Deterministic: true}
	for si, st := range []struct {
		dayOffset, hour int
		soFar           float64
		model           *Model
	}{{-9, 11, 0.4, nil}, {-9, 16, 0.7, nil}, {-8, 11, 0.3, nil}, {-7, 12, 0.5, m}, {-7, 15, 0.8, m}, {-6, 11, 0.4, m}, {-2, 11, 0.4, m}} {
		for k := range n {
			snap := src.snapshot(k, st.dayOffset, st.hour, st.soFar)
			if k%4 == 0 {
				snap.StockoutDays = []int32{54}
			}
			var out [2][]byte
			for i, sc := range scorers {
				sc.SetModel(st.model)
				ev := score(t, sc, snap).Event
				// issued_at is the clock's; the rest must be equal
				b, err := enc.Marshal(ev)
				if err != nil {
					t.Fatal(err)
				}
				out[i] = b
			}
			if !bytes.Equal(out[0], out[1]) {
				t.Fatalf("step %d series %d: the forecasts differ", si, k)
			}
		}
	}
	// one kept, and the one whose latest forecast the last commit dropped
	// (made cold by the next put)
	for i, want := range []int{n, 2} {
		sc := scorers[i]
		if hot := sc.cache.hotLen(); hot != want || sc.Series() != n {
			t.Errorf("scorer %d: %d series hot of %d, want %d of %d", i, hot, sc.Series(), want, n)
		}
	}
	// the cold series are decoded as they were
	for k := range n {
		key := src.key(k)
		a, _ := scorers[0].cache.peek(key)
		b, _ := scorers[1].cache.peek(key)
		if a.state != b.state || a.win != b.win || a.prev != b.prev || a.synced != b.synced || a.lastStart != b.lastStart {
			t.Errorf("%s: the cold series differs from the decoded one", key)
		}
	}
	var zero forecasting.State
	if a, _ := scorers[1].cache.peek(src.key(0)); a.state == zero {
		t.Error("series 0 has no state")
	}
}

// BenchmarkColdSeries measures what a cold series costs an event: making
// a real scored series cold (encode) and decoding it, next to scoring a
// same-day event of a hot series in the same run (the ratios it prints),
// with the ensemble alone and with a global model (the series' part
// encoded too).
// Run it with
//
//	go test -run '^$' -bench ColdSeries ./services/forecast/internal/scoring/
func BenchmarkColdSeries(b *testing.B) {
	src := m5Source{ds: loadM5Tiny(b), histDays: 365}
	for _, withModel := range []bool{false, true} {
		name := "ensemble"
		var model *Model
		if withModel {
			name = "global"
			model = benchModel(b, testSeries{start: 19000, demand: weekly(2000)})
		}
		sc := New(testConfig(10), src, fixedClock)
		sc.cache.keepDecoded = true
		sc.SetModel(model)
		ctx := context.Background()
		scoreOne := func(snap *featurev1.FeatureSnapshot) {
			batch := sc.Begin()
			if _, err := batch.Score(ctx, snap); err != nil {
				b.Fatal(err)
			}
			batch.Commit()
		}
		scoreOne(src.snapshot(3, -2, 11, 0.4))
		scoreOne(src.snapshot(3, -1, 11, 0.4))
		later := src.snapshot(3, -1, 15, 0.6)
		s, _ := sc.cache.peek(src.key(3))
		if (s.global != nil) != withModel {
			b.Fatalf("%s: global part %v", name, s.global != nil)
		}
		cs, scratch := encodeCold(s, nil)
		ns := map[string]float64{}
		for _, c := range []struct {
			name string
			run  func()
		}{
			{"same_day_score", func() { scoreOne(later) }},
			{"encode", func() { _, scratch = encodeCold(s, scratch) }},
			{"decode", func() { _ = cs.decode() }},
		} {
			b.Run(name+"/"+c.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					c.run()
				}
				ns[c.name] = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			})
		}
		if base := ns["same_day_score"]; base > 0 {
			fmt.Printf("cold series %s: %d bytes; encode %.2f, decode %.2f of a same-day event's scoring (%.0f ns)\n",
				name, len(cs.packed), ns["encode"]/base, ns["decode"]/base, base)
		}
	}
}

// TestColdConcurrentBatches: batches of different series scored at once
// (a goroutine per partition, as the service does) while series turn cold
// and hot again, and the API reads: every forecast equals the one a
// scorer alone with every series as it is makes (run it with -race for
// the cold flag written under the lock beside batches reading the
// series).
func TestColdConcurrentBatches(t *testing.T) {
	src := m5Source{ds: loadM5Tiny(t), histDays: 120}
	const n, workers = 24, 3
	cfg := testConfig(n)
	cfg.LatestSeries = 2
	shared := New(cfg, src, fixedClock)
	alone := New(testConfig(n), src, fixedClock)
	alone.cache.keepDecoded = true
	offsets := []int{-6, -6, -5, -4}
	want := map[string][]byte{}
	enc := proto.MarshalOptions{Deterministic: true}
	for i, off := range offsets {
		for k := range n {
			snap := src.snapshot(k, off, 11+i, 0.5)
			b, err := enc.Marshal(score(t, alone, snap).Event)
			if err != nil {
				t.Fatal(err)
			}
			want[snap.GetEventId()] = b
		}
	}
	errs := make(chan error, workers+1)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				errs <- nil
				return
			default:
				shared.Latest(src.key(0))
				_ = shared.ColdSeries() + shared.Series()
			}
		}
	}()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i, off := range offsets {
				for k := w; k < n; k += workers {
					snap := src.snapshot(k, off, 11+i, 0.5)
					batch := shared.Begin()
					res, err := batch.Score(context.Background(), snap)
					if err != nil {
						errs <- err
						return
					}
					batch.Commit()
					b, err := enc.Marshal(res.Event)
					if err != nil {
						errs <- err
						return
					}
					if !bytes.Equal(b, want[snap.GetEventId()]) {
						errs <- fmt.Errorf("%s: the forecast differs from the one scored alone", snap.GetEventId())
						return
					}
				}
			}
			errs <- nil
		}()
	}
	wg.Wait()
	close(done)
	for range workers + 1 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if cold := shared.ColdSeries(); cold < n-workers-cfg.LatestSeries {
		t.Errorf("%d cold series of %d, want at least %d", cold, n, n-workers-cfg.LatestSeries)
	}
}

// TestColdPartForms: a global part's compact form for the cases real
// series rarely make: a version other than the series' (written out),
// means that are not the margins' sum or its exp (written), exp(sum)
// means (made again), no change, NaN and negative numbers, empty and
// non-ASCII strings; each decodes to the same bits, and cut short it does
// not decode.
func TestColdPartForms(t *testing.T) {
	nan := math.NaN()
	sum := &globalPart{version: "v2", start: 19500, price: nan, dept: "", cat: "Läden/ü", bias: -0.25, stableBias: 1e-300,
		means: []float64{3, -1.5}, stable: []float64{1, -2}, volatile: []float64{2, 0.5},
		values: []float64{nan, 0, 7, math.Inf(-1)}, stableContrib: []float64{0.1, 0, -0.3, 2}, contrib: []float64{0.1, 0.2, -0.3, 5},
		change: []float64{0, -0.125, nan, 1}}
	exp := *sum
	exp.means = []float64{math.Exp(3), math.Exp(-1.5)}
	exp.change = nil
	other := *sum
	other.means = []float64{3, 4} // neither
	other.version = "v1"
	for i, c := range []struct {
		g       *globalPart
		version string // the series' prev.globalVersion
		flags   byte
	}{{sum, "v2", partMeansSum | partChange}, {&exp, "v2", partMeansExp}, {&other, "v2", partOwnVersion | partChange}, {sum, "", partOwnVersion | partMeansSum | partChange}} {
		b := appendPart(nil, c.g, c.version)
		if b[0] != c.flags {
			t.Errorf("case %d: flags %b, want %b", i, b[0], c.flags)
		}
		got, rest, err := readPart(b, c.version)
		if err != nil || len(rest) != 0 || !samePart(got, c.g) {
			t.Fatalf("case %d: decoded %+v, %d bytes left, %v; want %+v", i, got, len(rest), err, c.g)
		}
		for cut := range len(b) {
			if _, rest, err := readPart(b[:cut], c.version); err == nil {
				t.Fatalf("case %d: cut at %d of %d bytes, decoded (%d left)", i, cut, len(b), len(rest))
			}
		}
	}
}

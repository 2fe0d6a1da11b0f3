package scoring

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/stockcast/stockcast/pkg/backtest"
	"github.com/stockcast/stockcast/pkg/gbt"
	"github.com/stockcast/stockcast/pkg/globalmodel"
	"github.com/stockcast/stockcast/pkg/modelregistry"
	featurev1 "github.com/stockcast/stockcast/proto/stockcast/feature/v1"
)

var updateGolden = flag.Bool("update-golden", false, "write testdata/score_golden.txt from this code")

// goldenModelPath is the global model TestScoreGolden scores with: a
// model of depth 6 trained (with -update-golden) on 40 series with their
// own prices (the first one's moving, and its demand with it), so that some of its trees split on the price (the volatile
// forest is not empty). It is kept, not trained again, so that the golden
// values do not move with the trainer.
var goldenModelPath = filepath.Join("testdata", "golden-model.json")

func goldenModel(t *testing.T, src testSeries) *Model {
	t.Helper()
	if *updateGolden {
		const n, days = 40, 400
		ds := &backtest.Dataset{Name: "golden", Start: src.start, Days: days}
		for k := range n {
			s := backtest.Series{ID: fmt.Sprintf("I%d|online", k), Item: fmt.Sprintf("I%d", k), Dept: "all",
				Cat: "all", Store: "online", Values: make([]float64, days), Prices: make([]float64, days)}
			for d := range days {
				s.Prices[d] = float64(1 + k%7)
				if k == 0 {
					s.Prices[d] = float64(1 + d/50%7)
				}
				s.Values[d] = math.Round(src.demand[(d+k)%len(src.demand)] * float64(1+k%5) / 2 * elastic(k, s.Prices[d]))
			}
			ds.Series = append(ds.Series, s)
		}
		p := gbt.DefaultParams()
		p.Rounds, p.MaxDepth, p.EarlyStoppingRounds, p.MinChildWeight = 24, 6, 0, 1
		tr, err := globalmodel.Train(globalmodel.NewPanel(ds), days, 28, p, false)
		if err != nil {
			t.Fatal(err)
		}
		a, err := globalmodel.NewArtefact(tr.Model, ds.Name, ds.Day(days).String(), 28, nil, time.Unix(0, 0))
		if err != nil {
			t.Fatal(err)
		}
		path, err := a.Save(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		body, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(goldenModelPath, body, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := modelregistry.NewSeries(a.Version, ds).Save(goldenModelPath); err != nil {
			t.Fatal(err)
		}
	}
	m, err := LoadModel(goldenModelPath, DefaultGlobalWeight)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// elastic is the demand factor of series k at a price: the first
// series' demand falls as its price rises (which moves), the others' do
// not move.
func elastic(k int, price float64) float64 {
	if k != 0 {
		return 1
	}
	return (8 - price) / 4
}

// resultDigest is a digest of everything a Result publishes: the forecast
// event (deterministic encoding) and the components, values bit for bit.
func resultDigest(res *Result) string {
	h := sha256.New()
	ev, err := proto.MarshalOptions{Deterministic: true}.Marshal(res.Event)
	if err != nil {
		panic(err)
	}
	h.Write(ev)
	for _, c := range res.Components {
		h.Write([]byte(c.Name + "\x00" + c.Detail + "\x00"))
		h.Write(binary.LittleEndian.AppendUint64(nil, math.Float64bits(c.Value)))
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// TestScoreGolden scores 600 events of the kinds BenchmarkScore measures
// (a day's first event, more events of the day, price changes, model
// swaps, latest forecasts not kept whole, the ensemble alone) and compares
// each result, bit for bit, with testdata/score_golden.txt, written by the
// code before the per-event cuts of session 7 (617d4d7, with
// -update-golden): the cuts must not change a published byte.
func TestScoreGolden(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("golden values are amd64's (other architectures may fuse multiply-adds)")
	}
	src := testSeries{start: 19000, demand: weekly(400)}
	if *updateGolden {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
	}
	gm := goldenModel(t, src)
	t.Logf("golden model: %d stable and %d volatile trees", len(gm.stable.roots), len(gm.volatile.roots))
	if len(gm.volatile.roots) == 0 || len(gm.stable.roots) == 0 {
		t.Fatalf("golden model: %d stable and %d volatile trees, want both", len(gm.stable.roots), len(gm.volatile.roots))
	}
	other := *gm
	other.Version += "-other"
	var got []string
	ctx := context.Background()
	for _, m := range []*Model{nil, gm} {
		sc := New(testConfig(10), src, fixedClock)
		sc.SetModel(m)
		scoreOne := func(snap *featurev1.FeatureSnapshot) {
			b := sc.Begin()
			res, err := b.Score(ctx, snap)
			if err != nil {
				t.Fatalf("score %s: %v", snap.GetEventId(), err)
			}
			b.Commit()
			got = append(got, resultDigest(res))
		}
		for day := 100; day < 150; day++ {
			scoreOne(src.snapshot(day, fmt.Sprintf("d%d", day))) // the day's first event
			later := src.snapshot(day, fmt.Sprintf("d%d-later", day))
			later.RecentDaily[len(later.RecentDaily)-1]++
			later.OccurredAt.Seconds += 3600
			scoreOne(later) // another event of the day
			switch day % 5 {
			case 1: // a price change
				p := src.snapshot(day, fmt.Sprintf("d%d-price", day))
				p.Price = float64(2 + day%4)
				scoreOne(p)
			case 2: // the latest forecast not kept whole
				sc.mu.Lock()
				sc.latest.remove(later.GetSeriesKey())
				sc.mu.Unlock()
				scoreOne(src.snapshot(day, fmt.Sprintf("d%d-unkept", day)))
			case 3: // a model swap and back
				if m == gm {
					sc.SetModel(&other)
					scoreOne(src.snapshot(day, fmt.Sprintf("d%d-swap", day)))
					sc.SetModel(gm)
				}
			}
		}
	}
	path := filepath.Join("testdata", "score_golden.txt")
	if *updateGolden {
		if err := os.WriteFile(path, []byte(strings.Join(got, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var want []string
	for sc := bufio.NewScanner(f); sc.Scan(); {
		want = append(want, sc.Text())
	}
	if len(want) != len(got) {
		t.Fatalf("%d results, golden has %d", len(got), len(want))
	}
	bad := 0
	for i := range got {
		if got[i] != want[i] {
			if bad++; bad <= 5 {
				t.Errorf("result %d: digest %s, golden %s", i, got[i], want[i])
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d results differ from the golden ones", bad, len(got))
	}
}

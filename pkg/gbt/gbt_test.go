package gbt

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"sync/atomic"
	"testing"
	"time"
)

// TestStumpByHand: squared loss, eta 1, lambda 0, depth 1 on x = 1 2 3 4,
// y = 1 1 5 5: base 3, gradients 2 2 -2 -2, the best split is x <= 2 with
// leaf weights -4/2 = -2 and +2, so the model predicts 1 1 5 5 exactly.
func TestStumpByHand(t *testing.T) {
	x := Matrix{Rows: 4, Cols: 1, Data: []float64{1, 2, 3, 4}}
	p := Params{Objective: "squared", Rounds: 1, Eta: 1, MaxDepth: 1, Lambda: 0, Seed: 1}
	m, err := Train(p, []string{"x"}, x, []float64{1, 1, 5, 5}, Matrix{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Trees) != 1 || len(m.Trees[0].Nodes) != 3 {
		t.Fatalf("trees %+v, want one stump", m.Trees)
	}
	root := m.Trees[0].Nodes[0]
	if root.Threshold != 2 || root.Feature != 0 {
		t.Errorf("root split x <= %v, want 2", root.Threshold)
	}
	for i, want := range []float64{1, 1, 5, 5} {
		if got := m.Predict(x.Row(i)); math.Abs(got-want) > 1e-12 {
			t.Errorf("row %d: %v, want %v", i, got, want)
		}
	}
	// NaN goes left; raw values between the training values follow the
	// threshold.
	if got := m.Predict([]float64{math.NaN()}); got != 1 {
		t.Errorf("NaN: %v, want 1 (left)", got)
	}
	if got := m.Predict([]float64{2.5}); got != 5 {
		t.Errorf("2.5: %v, want 5", got)
	}
}

// synthetic is a Poisson regression problem with a known mean:
// log mu = 0.8*x0 - 0.5*[x1 > 0.3] + 0.3*sin(3*x2), x3 noise, some NaN.
func synthetic(n int, seed uint64) (Matrix, []float64, []float64) {
	rng := rand.New(rand.NewPCG(seed, 7))
	x := Matrix{Rows: n, Cols: 4, Data: make([]float64, n*4)}
	y, mu := make([]float64, n), make([]float64, n)
	for i := range n {
		r := x.Row(i)
		for f := range r {
			r[f] = rng.Float64()*2 - 1
		}
		lm := 0.8*r[0] + 0.3*math.Sin(3*r[2])
		if r[1] > 0.3 {
			lm -= 0.5
		}
		if i%10 == 0 {
			r[3] = math.NaN()
		}
		mu[i] = math.Exp(lm)
		// Poisson draw by inversion
		k, p, u := 0.0, math.Exp(-mu[i]), rng.Float64()
		c := p
		for u > c {
			k++
			p *= mu[i] / k
			c += p
		}
		y[i] = k
	}
	return x, y, mu
}

func TestLearnsPoissonMeanDeterministically(t *testing.T) {
	x, y, _ := synthetic(20000, 1)
	xv, yv, muv := synthetic(5000, 2)
	names := []string{"x0", "x1", "x2", "x3"}
	for _, obj := range []string{"poisson", "tweedie"} {
		p := DefaultParams()
		p.Objective, p.MaxDepth, p.Rounds, p.Eta = obj, 4, 300, 0.1
		m1, err := Train(p, names, x, y, xv, yv)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := Train(p, names, x, y, xv, yv)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(m1.Trees, m2.Trees) {
			t.Errorf("%s: two trainings with the same seed differ", obj)
		}
		p.Seed = 2
		m3, _ := Train(p, names, x, y, xv, yv)
		if reflect.DeepEqual(m1.Trees, m3.Trees) {
			t.Errorf("%s: a different seed gives the same trees", obj)
		}
		// The model's mean must be much closer to the true mean than the
		// constant mean is.
		var errModel, errConst, ybar float64
		for _, v := range yv {
			ybar += v / float64(len(yv))
		}
		for i := range xv.Rows {
			d := m1.Predict(xv.Row(i)) - muv[i]
			errModel += d * d
			errConst += (ybar - muv[i]) * (ybar - muv[i])
		}
		t.Logf("%s: %d trees, MSE to the true mean %.4f, constant %.4f", obj, m1.BestRound, errModel/5000, errConst/5000)
		if errModel > 0.1*errConst {
			t.Errorf("%s: MSE to the true mean %.4f, not below a tenth of the constant's %.4f", obj, errModel/5000, errConst/5000)
		}
		// Path attributions add up to the margin; the noise feature gets
		// little.
		var noise, signal float64
		for i := range 200 {
			bias, c := m1.Contributions(xv.Row(i))
			sum := bias
			for _, v := range c {
				sum += v
			}
			if math.Abs(sum-m1.Margin(xv.Row(i))) > 1e-9 {
				t.Fatalf("%s: contributions add to %v, margin %v", obj, sum, m1.Margin(xv.Row(i)))
			}
			noise += math.Abs(c[3])
			signal += math.Abs(c[0])
		}
		if noise > signal/3 {
			t.Errorf("%s: noise feature attribution %.3f vs x0 %.3f", obj, noise, signal)
		}
	}
}

func TestEarlyStopping(t *testing.T) {
	x, y, _ := synthetic(3000, 3)
	xv, yv, _ := synthetic(3000, 4)
	p := DefaultParams()
	p.Objective, p.MaxDepth, p.MinChildWeight, p.Eta, p.Rounds, p.EarlyStoppingRounds = "poisson", 10, 1, 0.3, 500, 20
	m, err := Train(p, []string{"a", "b", "c", "d"}, x, y, xv, yv)
	if err != nil {
		t.Fatal(err)
	}
	if m.BestRound >= 500 || len(m.Trees) != m.BestRound || len(m.History) < m.BestRound+20 {
		t.Errorf("best round %d, %d trees, %d rounds run: want an early stop", m.BestRound, len(m.Trees), len(m.History))
	}
	for i := m.BestRound; i < len(m.History); i++ {
		if m.History[i] < m.History[m.BestRound-1] {
			t.Errorf("round %d has a lower validation loss than the kept best", i+1)
		}
	}
}

// roundCtx is a cancellable context that counts Err calls (TrainContext
// checks it once per round) and reports the first one on started.
type roundCtx struct {
	context.Context
	calls   atomic.Int64
	started chan struct{}
}

func (c *roundCtx) Err() error {
	if c.calls.Add(1) == 1 {
		close(c.started)
	}
	return c.Context.Err()
}

// TestTrainContextCancelledMidTraining: a training of 100,000 rounds
// (no early stopping) is cancelled from another goroutine once it has
// started; it returns context.Canceled and no model, having checked the
// context at most once more after the cancel (so it started at most one
// more tree).
func TestTrainContextCancelledMidTraining(t *testing.T) {
	x, y, _ := synthetic(5000, 5)
	p := DefaultParams()
	p.Objective, p.MaxDepth, p.Rounds, p.EarlyStoppingRounds = "poisson", 6, 100_000, 0
	parent, cancel := context.WithCancel(context.Background())
	defer cancel()
	ctx := &roundCtx{Context: parent, started: make(chan struct{})}
	type result struct {
		m   *Model
		err error
	}
	done := make(chan result, 1)
	go func() {
		m, err := TrainContext(ctx, p, []string{"a", "b", "c", "d"}, x, y, Matrix{}, nil)
		done <- result{m, err}
	}()
	<-ctx.started
	cancel()
	atCancel := ctx.calls.Load()
	select {
	case r := <-done:
		if !errors.Is(r.err, context.Canceled) || r.m != nil {
			t.Fatalf("cancelled training returned %v, %v; want context.Canceled and no model", r.m, r.err)
		}
	case <-time.After(time.Minute): // a guard against a hang, not a timing assertion
		t.Fatalf("training still running a minute after the cancel (%d rounds checked)", ctx.calls.Load())
	}
	if rounds := ctx.calls.Load(); rounds > atCancel+1 || rounds >= int64(p.Rounds) {
		t.Errorf("context checked %d times, %d at the cancel: want at most one more check", rounds, atCancel)
	}
	// An already cancelled context trains nothing.
	if m, err := TrainContext(parent, p, []string{"a", "b", "c", "d"}, x, y, Matrix{}, nil); !errors.Is(err, context.Canceled) || m != nil {
		t.Errorf("cancelled context: %v, %v", m, err)
	}
}

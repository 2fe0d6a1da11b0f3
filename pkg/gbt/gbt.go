package gbt

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"time"
)

// Matrix is a dense row-major feature matrix; NaN is a missing value.
type Matrix struct {
	Rows, Cols int
	Data       []float64
}

// At returns the value of row r, feature f.
func (m Matrix) At(r, f int) float64 { return m.Data[r*m.Cols+f] }

// Row returns row r.
func (m Matrix) Row(r int) []float64 { return m.Data[r*m.Cols : (r+1)*m.Cols] }

// Params are the booster's settings, named as XGBoost names them.
type Params struct {
	// Objective: "poisson" (log link) or "tweedie" (log link, variance
	// power TweedieVariancePower in (1, 2)), or "squared".
	Objective            string
	TweedieVariancePower float64
	Rounds               int     // maximum number of trees
	EarlyStoppingRounds  int     // stop when the validation loss has not improved for this many rounds (0: never)
	Eta                  float64 // learning rate
	MaxDepth             int
	MinChildWeight       float64 // minimum hessian sum in a leaf
	Lambda               float64 // L2 regularisation of leaf weights
	Subsample            float64 // row fraction per tree (0 or 1: all)
	ColsampleByTree      float64 // feature fraction per tree (0 or 1: all)
	Seed                 uint64
	Threads              int // histogram building goroutines (0: 2)
}

// DefaultParams are the settings of the M5-style global model.
func DefaultParams() Params {
	return Params{Objective: "tweedie", TweedieVariancePower: 1.1, Rounds: 1000, EarlyStoppingRounds: 50,
		Eta: 0.05, MaxDepth: 8, MinChildWeight: 10, Lambda: 1, Subsample: 0.8, ColsampleByTree: 0.8, Seed: 1, Threads: 2}
}

// Validate reports settings the booster cannot use.
func (p Params) Validate() error {
	switch p.Objective {
	case "poisson", "squared":
	case "tweedie":
		if p.TweedieVariancePower <= 1 || p.TweedieVariancePower >= 2 {
			return fmt.Errorf("tweedie variance power %v not in (1, 2)", p.TweedieVariancePower)
		}
	default:
		return fmt.Errorf("unknown objective %q", p.Objective)
	}
	if p.Rounds <= 0 || p.Eta <= 0 || p.MaxDepth <= 0 || p.MaxDepth > 16 {
		return errors.New("rounds, eta and max depth (1..16) must be positive")
	}
	return nil
}

// Node is one tree node: an internal node sends a row left when its
// feature is NaN or <= Threshold; a leaf (Left < 0) adds Value to the
// margin. Value is kept on internal nodes too (the weight the node would
// have as a leaf) for path attributions.
type Node struct {
	Feature     int32
	Left, Right int32
	Threshold   float64
	Value       float64
	Cover       float64 // hessian sum
}

// Tree is a flat binary tree, root first.
type Tree struct{ Nodes []Node }

// Model is a trained booster.
type Model struct {
	Params    Params
	Features  []string
	BaseScore float64 // initial margin
	Trees     []Tree
	// BestRound is the number of trees kept (early stopping); History the
	// validation loss after each round (empty without validation).
	BestRound int
	History   []float64
	TrainTime time.Duration
}

// Margin returns the raw score of one row (log of the mean for the log-link
// objectives).
func (m *Model) Margin(row []float64) float64 {
	s := m.BaseScore
	for i := range m.Trees {
		s += m.Trees[i].leaf(row).Value
	}
	return s
}

func (t *Tree) leaf(row []float64) *Node {
	n := &t.Nodes[0]
	for n.Left >= 0 {
		if v := row[n.Feature]; math.IsNaN(v) || v <= n.Threshold {
			n = &t.Nodes[n.Left]
		} else {
			n = &t.Nodes[n.Right]
		}
	}
	return n
}

// Predict returns the mean for one row.
func (m *Model) Predict(row []float64) float64 {
	s := m.Margin(row)
	if m.Params.Objective == "squared" {
		return s
	}
	return math.Exp(s)
}

// Contributions returns the per-feature contributions to the margin of
// one row (Saabas path attribution: each split's change of node value is
// credited to its feature) and the bias, the margin with no feature; bias
// plus the sum of contributions is Margin(row).
func (m *Model) Contributions(row []float64) (bias float64, contrib []float64) {
	contrib = make([]float64, len(m.Features))
	bias = m.BaseScore
	for i := range m.Trees {
		t := &m.Trees[i]
		n := &t.Nodes[0]
		bias += n.Value
		for n.Left >= 0 {
			next := &t.Nodes[n.Right]
			if v := row[n.Feature]; math.IsNaN(v) || v <= n.Threshold {
				next = &t.Nodes[n.Left]
			}
			contrib[n.Feature] += next.Value - n.Value
			n = next
		}
	}
	return bias, contrib
}

// gradients writes the objective's gradient and hessian at margin f for
// target y.
func (p *Params) gradients(f, y float64) (g, h float64) {
	switch p.Objective {
	case "poisson":
		mu := math.Exp(f)
		return mu - y, mu * math.Exp(0.7) // XGBoost's max_delta_step 0.7 for Poisson
	case "tweedie":
		rho := p.TweedieVariancePower
		a, b := math.Exp((1-rho)*f), math.Exp((2-rho)*f)
		return -y*a + b, -y*(1-rho)*a + (2-rho)*b
	default:
		return f - y, 1
	}
}

// loss is the objective's negative log-likelihood (up to constants) of
// margin f for y: what early stopping watches.
func (p *Params) loss(f, y float64) float64 {
	switch p.Objective {
	case "poisson":
		return math.Exp(f) - y*f
	case "tweedie":
		rho := p.TweedieVariancePower
		return -y*math.Exp((1-rho)*f)/(1-rho) + math.Exp((2-rho)*f)/(2-rho)
	default:
		return (f - y) * (f - y) / 2
	}
}

// Train fits a booster on x, y; if xv is not empty it is the validation
// set for early stopping (the model keeps the best round's trees).
func Train(p Params, features []string, x Matrix, y []float64, xv Matrix, yv []float64) (*Model, error) {
	return TrainContext(context.Background(), p, features, x, y, xv, yv)
}

// TrainContext is Train that stops when ctx is done: ctx is checked
// before each round (one tree), and a cancelled training returns
// ctx.Err() and no model.
func TrainContext(ctx context.Context, p Params, features []string, x Matrix, y []float64, xv Matrix, yv []float64) (*Model, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if x.Rows != len(y) || x.Rows == 0 || len(features) != x.Cols || len(x.Data) != x.Rows*x.Cols {
		return nil, fmt.Errorf("matrix %dx%d with %d targets and %d feature names", x.Rows, x.Cols, len(y), len(features))
	}
	if xv.Rows != len(yv) || (xv.Rows > 0 && xv.Cols != x.Cols) {
		return nil, fmt.Errorf("validation matrix %dx%d with %d targets", xv.Rows, xv.Cols, len(yv))
	}
	start := time.Now()
	threads := p.Threads
	if threads <= 0 {
		threads = 2
	}
	mean := 0.0
	for _, v := range y {
		if v < 0 && p.Objective != "squared" {
			return nil, fmt.Errorf("negative target %v for a count objective", v)
		}
		mean += v
	}
	mean /= float64(len(y))
	m := &Model{Params: p, Features: features, BaseScore: mean}
	if p.Objective != "squared" {
		m.BaseScore = math.Log(max(mean, 1e-6))
	}
	bn := newBinner(x, 200_000)
	bins := bn.binned(x)
	g := &grower{p: &p, bins: bins, bn: &bn, threads: threads,
		grad: make([]float64, x.Rows), hess: make([]float64, x.Rows), idx: make([]int32, 0, x.Rows)}
	margin := make([]float64, x.Rows)
	for i := range margin {
		margin[i] = m.BaseScore
	}
	vmargin := make([]float64, xv.Rows)
	for i := range vmargin {
		vmargin[i] = m.BaseScore
	}
	rng := rand.New(rand.NewPCG(p.Seed, 0x5eed))
	best, bestLoss := 0, math.Inf(1)
	for round := range p.Rounds {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		for i := range y {
			g.grad[i], g.hess[i] = p.gradients(margin[i], y[i])
		}
		g.idx = g.idx[:0]
		for i := range x.Rows {
			if p.Subsample <= 0 || p.Subsample >= 1 || rng.Float64() < p.Subsample {
				g.idx = append(g.idx, int32(i))
			}
		}
		g.features = g.features[:0]
		for f := range x.Cols {
			if p.ColsampleByTree <= 0 || p.ColsampleByTree >= 1 || rng.Float64() < p.ColsampleByTree {
				g.features = append(g.features, f)
			}
		}
		if len(g.features) == 0 {
			g.features = append(g.features, rng.IntN(x.Cols))
		}
		t := g.grow()
		m.Trees = append(m.Trees, t)
		for i := range x.Rows {
			margin[i] += g.leafBinned(&t, i).Value
		}
		if xv.Rows == 0 {
			best = round + 1
			continue
		}
		l := 0.0
		for i := range xv.Rows {
			vmargin[i] += t.leaf(xv.Row(i)).Value
			l += p.loss(vmargin[i], yv[i])
		}
		l /= float64(xv.Rows)
		m.History = append(m.History, l)
		if l < bestLoss {
			best, bestLoss = round+1, l
		} else if p.EarlyStoppingRounds > 0 && round+1-best >= p.EarlyStoppingRounds {
			break
		}
	}
	m.Trees = m.Trees[:best]
	m.BestRound = best
	m.TrainTime = time.Since(start)
	return m, nil
}

// leafBinned finds row r's leaf in the tree just grown, on the training
// bins (the split bins of its nodes are in splitBin).
func (g *grower) leafBinned(t *Tree, r int) *Node {
	n := int32(0)
	for t.Nodes[n].Left >= 0 {
		if g.bins[t.Nodes[n].Feature][r] <= g.splitBin[n] {
			n = t.Nodes[n].Left
		} else {
			n = t.Nodes[n].Right
		}
	}
	return &t.Nodes[n]
}

// grower grows one tree depth-wise on histograms.
type grower struct {
	p          *Params
	bins       [][]uint8
	bn         *binner
	threads    int
	grad, hess []float64
	idx        []int32
	features   []int
	splitBin   []uint8 // per node of the tree being grown
}

type hist [maxBins][2]float64

type pending struct {
	node       int32
	begin, end int
	hist       []hist // per feature in g.features order
	gSum, hSum float64
	depth      int
}

func (g *grower) grow() Tree {
	var t Tree
	g.splitBin = g.splitBin[:0]
	root := pending{node: 0, begin: 0, end: len(g.idx)}
	root.hist = g.build(root.begin, root.end)
	for _, i := range g.idx {
		root.gSum += g.grad[i]
		root.hSum += g.hess[i]
	}
	t.Nodes = append(t.Nodes, Node{Left: -1, Right: -1, Value: g.weight(root.gSum, root.hSum), Cover: root.hSum})
	g.splitBin = append(g.splitBin, 0)
	queue := []pending{root}
	for len(queue) > 0 {
		nd := queue[0]
		queue = queue[1:]
		if nd.depth >= g.p.MaxDepth {
			continue
		}
		fi, bin, gl, hl, ok := g.bestSplit(&nd)
		if !ok {
			continue
		}
		f := g.features[fi]
		col := g.bins[f]
		// partition idx[begin:end]: left (bin <= split) first, stable
		mid := g.partition(nd.begin, nd.end, col, bin)
		left := pending{begin: nd.begin, end: mid, gSum: gl, hSum: hl, depth: nd.depth + 1}
		right := pending{begin: mid, end: nd.end, gSum: nd.gSum - gl, hSum: nd.hSum - hl, depth: nd.depth + 1}
		// histogram of the smaller child, the other by subtraction
		small, large := &left, &right
		if right.end-right.begin < left.end-left.begin {
			small, large = &right, &left
		}
		small.hist = g.build(small.begin, small.end)
		large.hist = nd.hist
		for k := range large.hist {
			for b := range large.hist[k] {
				large.hist[k][b][0] -= small.hist[k][b][0]
				large.hist[k][b][1] -= small.hist[k][b][1]
			}
		}
		left.node = int32(len(t.Nodes))
		right.node = left.node + 1
		t.Nodes = append(t.Nodes,
			Node{Left: -1, Right: -1, Value: g.weight(left.gSum, left.hSum), Cover: left.hSum},
			Node{Left: -1, Right: -1, Value: g.weight(right.gSum, right.hSum), Cover: right.hSum})
		g.splitBin = append(g.splitBin, 0, 0)
		n := &t.Nodes[nd.node]
		n.Feature, n.Left, n.Right = int32(f), left.node, right.node
		n.Threshold = g.bn.threshold(f, int(bin))
		g.splitBin[nd.node] = bin
		queue = append(queue, left, right)
	}
	return t
}

func (g *grower) weight(gs, hs float64) float64 {
	return -g.p.Eta * gs / (hs + g.p.Lambda)
}

// build returns the gradient histograms of idx[begin:end] for every
// sampled feature, built in parallel over features (each histogram is
// summed in row order, so the result does not depend on the threads).
func (g *grower) build(begin, end int) []hist {
	h := make([]hist, len(g.features))
	rows := g.idx[begin:end]
	var wg sync.WaitGroup
	next := make(chan int, len(g.features))
	for k := range g.features {
		next <- k
	}
	close(next)
	for range min(g.threads, len(g.features)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range next {
				col := g.bins[g.features[k]]
				hk := &h[k]
				for _, r := range rows {
					b := col[r]
					hk[b][0] += g.grad[r]
					hk[b][1] += g.hess[r]
				}
			}
		}()
	}
	wg.Wait()
	return h
}

func (g *grower) bestSplit(nd *pending) (fi int, bin uint8, gl, hl float64, ok bool) {
	lambda, mcw := g.p.Lambda, g.p.MinChildWeight
	parent := nd.gSum * nd.gSum / (nd.hSum + lambda)
	bestGain := 1e-12
	for k := range nd.hist {
		hk := &nd.hist[k]
		var cg, ch float64
		for b := 0; b < maxBins-1; b++ {
			cg += hk[b][0]
			ch += hk[b][1]
			if ch < mcw {
				continue
			}
			rh := nd.hSum - ch
			if rh < mcw {
				break
			}
			rg := nd.gSum - cg
			gain := cg*cg/(ch+lambda) + rg*rg/(rh+lambda) - parent
			if gain > bestGain {
				bestGain, fi, bin, gl, hl, ok = gain, k, uint8(b), cg, ch, true
			}
		}
	}
	return fi, bin, gl, hl, ok
}

func (g *grower) partition(begin, end int, col []uint8, bin uint8) int {
	rows := g.idx[begin:end]
	tmp := make([]int32, 0, len(rows))
	w := 0
	for _, r := range rows {
		if col[r] <= bin {
			rows[w] = r
			w++
		} else {
			tmp = append(tmp, r)
		}
	}
	copy(rows[w:], tmp)
	return begin + w
}

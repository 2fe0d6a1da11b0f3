package scoring

import (
	"math"

	"github.com/stockcast/stockcast/pkg/gbt"
)

// forest is a booster's trees laid out for prediction: every node in one
// slice, 16 bytes each (gbt.Node is 40: its hessian cover and inner-node
// values are for training and attributions), the two children of a split
// side by side. A row goes right when its value is above the threshold,
// left otherwise: NaN compares false, so a missing value goes left, as in
// gbt.Model.Margin. The leaves are added tree by tree in the booster's
// order, so the sums are bit for bit Predict's (TestForestPredictsAsGBT).
type forest struct {
	base  float64
	roots []int32
	depth []int32 // per tree: the most splits from its root to a leaf
	nodes []flatNode
	// inner[i] is node i's value (the mean of its leaves, for the path
	// attributions), apart because prediction never reads it
	inner []float64
}

// flatNode is a split (go to kids, or kids+1 when the row's feat value
// is above thr) or a leaf, which leads to itself: kids is its own index,
// feat 0 and thr +Inf, which no value is above (NaN neither), so that a
// walk of the tree's depth steps without testing for leaves; a leaf's
// value is inner's.
type flatNode struct {
	thr  float64
	feat int32
	kids int32
}

// splitForest lays out m's trees as two forests: the trees with no split
// on a feature volatile(f) says can change (with the base score), and the
// others, each in the booster's order.
func splitForest(m *gbt.Model, volatile func(f int32) bool) (stable, moving forest) {
	stable.base = m.BaseScore
	for t := range m.Trees {
		to := &stable
		for _, n := range m.Trees[t].Nodes {
			if n.Left >= 0 && volatile(n.Feature) {
				to = &moving
				break
			}
		}
		to.add(&m.Trees[t])
	}
	return stable, moving
}

// newForest lays out all of m's trees.
func newForest(m *gbt.Model) forest {
	f := forest{base: m.BaseScore}
	for t := range m.Trees {
		f.add(&m.Trees[t])
	}
	return f
}

// add appends a tree, breadth first.
func (f *forest) add(tree *gbt.Tree) {
	type item struct{ src, dst, depth int32 }
	depth := int32(0)
	nodes := tree.Nodes
	root := int32(len(f.nodes))
	f.roots = append(f.roots, root)
	f.nodes = append(f.nodes, flatNode{})
	f.inner = append(f.inner, 0)
	queue := []item{{0, root, 0}}
	for len(queue) > 0 {
		it := queue[0]
		queue = queue[1:]
		n := nodes[it.src]
		f.inner[it.dst] = n.Value
		if n.Left < 0 {
			// a leaf: every step stays there
			f.nodes[it.dst] = flatNode{thr: math.Inf(1), feat: 0, kids: it.dst}
			depth = max(depth, it.depth)
			continue
		}
		kids := int32(len(f.nodes))
		f.nodes = append(f.nodes, flatNode{}, flatNode{})
		f.inner = append(f.inner, 0, 0)
		f.nodes[it.dst] = flatNode{thr: n.Threshold, feat: n.Feature, kids: kids}
		queue = append(queue, item{n.Left, kids, it.depth + 1}, item{n.Right, kids + 1, it.depth + 1})
	}
	f.depth = append(f.depth, depth)
}

// contributions adds the forest's path attributions of row to contrib
// (per feature: each split's change of node value, as
// gbt.Model.Contributions) and returns its bias: the base score plus the
// roots' values.
func (f *forest) contributions(row, contrib []float64) float64 {
	bias := f.base
	nodes := f.nodes
	for _, root := range f.roots {
		i := root
		bias += f.inner[i]
		for n := &nodes[i]; n.kids != i; n = &nodes[i] {
			k := n.kids
			if row[n.feat] > n.thr {
				k++
			}
			contrib[n.feat] += f.inner[k] - f.inner[i]
			i = k
		}
	}
	return bias
}

// margins writes the margin (base score plus the leaves) of each row
// (len(out) rows of cols features) to out, tree by tree over all rows: a
// tree's nodes stay in the cache across the rows. Four rows walk a tree
// side by side, level by level for the tree's depth (a leaf leads to
// itself), so that their independent loads overlap; each step is a
// branch, which the processor predicts and runs ahead of (the rows of one
// series' days mostly take the same ways). A branch-free step (4afc991:
// all rows side by side, the index from the comparison) was faster in a
// loop of walks alone (BenchmarkMarginsWalk) but 1.10x slower inside the
// service's scoring of a new model's 28 days (BenchmarkScore
// model_swapped/global, 16 alternated rounds: docs/forecasting.md), where
// the nodes are no longer in the cache and the branches' speculation
// fetches the next levels early.
func (f *forest) margins(rows []float64, cols int, out []float64) {
	f.marginsContrib(rows, cols, out, nil, nil)
}

// marginsContrib is margins, and, if row0 is not nil, contributions(row0,
// contrib) too, returning its bias (0 without row0): row0's attribution
// walk of each tree goes side by side with the first rows' walks of the
// tree (a day's first event predicts one new day and attributes today's
// row: two walks of every tree that overlap instead of following each
// other). Each sum is made in the same order as by margins and
// contributions alone: the same values bit for bit
// (TestMarginsContribAsSeparate).
func (f *forest) marginsContrib(rows []float64, cols int, out []float64, row0, contrib []float64) float64 {
	for r := range out {
		out[r] = f.base
	}
	bias := 0.0
	withContrib := row0 != nil
	if withContrib {
		bias = f.base
	}
	nodes, inner := f.nodes, f.inner
	// step is a row's step from node i (a leaf leads to itself: no value
	// is above its +Inf)
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
		ic := root // row0's node
		if withContrib {
			bias += inner[root]
		}
		attrib := withContrib // row0 still to walk this tree
		for r := 0; r < n4; r += 4 {
			r0 := rows[r*cols : (r+1)*cols : (r+1)*cols]
			r1 := rows[(r+1)*cols : (r+2)*cols : (r+2)*cols]
			r2 := rows[(r+2)*cols : (r+3)*cols : (r+3)*cols]
			r3 := rows[(r+3)*cols : (r+4)*cols : (r+4)*cols]
			i0, i1, i2, i3 := root, root, root, root
			if attrib {
				for range depth {
					i0, i1, i2, i3 = step(i0, r0), step(i1, r1), step(i2, r2), step(i3, r3)
					ic = f.attrStep(ic, row0, contrib)
				}
				attrib = false
			} else {
				for range depth {
					i0, i1, i2, i3 = step(i0, r0), step(i1, r1), step(i2, r2), step(i3, r3)
				}
			}
			out[r] += inner[i0]
			out[r+1] += inner[i1]
			out[r+2] += inner[i2]
			out[r+3] += inner[i3]
		}
		for r := n4; r < len(out); r++ {
			row := rows[r*cols : (r+1)*cols : (r+1)*cols]
			i := root
			if attrib {
				for range depth {
					i, ic = step(i, row), f.attrStep(ic, row0, contrib)
				}
				attrib = false
			} else {
				for n := &nodes[i]; n.kids != i; n = &nodes[i] {
					i = step(i, row)
				}
			}
			out[r] += inner[i]
		}
		if attrib {
			for range depth {
				ic = f.attrStep(ic, row0, contrib)
			}
		}
	}
	return bias
}

// attrStep is row0's step from node i of an attribution walk, adding the
// split's change of node value to its feature's contribution (a leaf
// stays).
func (f *forest) attrStep(i int32, row0, contrib []float64) int32 {
	n := &f.nodes[i]
	if n.kids == i {
		return i
	}
	k := n.kids
	if row0[n.feat] > n.thr {
		k++
	}
	contrib[n.feat] += f.inner[k] - f.inner[i]
	return k
}

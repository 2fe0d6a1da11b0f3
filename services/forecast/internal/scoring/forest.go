package scoring

import (
	"math"
	"unsafe"

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
// tree's nodes stay in the cache across the rows. All rows walk a tree
// side by side, level by level for the tree's depth (a leaf leads to
// itself), each step without a branch from branchFreeRows rows on: the
// rows' walks are independent chains of loads that overlap, and no step
// mispredicts.
func (f *forest) margins(rows []float64, cols int, out []float64) {
	f.marginsContrib(rows, cols, out, nil, nil)
}

// marginsContrib is margins, and, if row0 is not nil, contributions(row0,
// contrib) too, returning its bias (0 without row0): row0's attribution
// walk of each tree goes level by level beside the rows' walks below
// branchFreeRows rows (a day's first event predicts one new day and
// attributes today's row: two walks of every tree that overlap instead of
// following each other), right after them from there on. Each sum
// is made in the same order as by margins and contributions alone: the
// same values bit for bit (TestMarginsContribAsSeparate).
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
	var idxBuf [32]int32 // each row's node
	idx := idxBuf[:0]
	if len(out) > len(idxBuf) {
		idx = make([]int32, 0, len(out))
	}
	idx = idx[:len(out)]
	rows = rows[:len(out)*cols]
	// below branchFreeRows rows, a branch at each step is faster: a
	// correctly predicted one lets the next load start at once (the
	// branch-free step waits for the compare), and few walks do not fill
	// the time of the mispredicted ones (BenchmarkMarginsWalk)
	branchFree := len(out) >= branchFreeRows
	for t, root := range f.roots {
		depth := f.depth[t]
		for r := range idx {
			idx[r] = root
		}
		ic := root // row0's node
		if withContrib {
			bias += inner[root]
		}
		for range depth {
			if branchFree {
				for r, i := range idx {
					n := &nodes[i]
					idx[r] = n.kids + b2i(rows[r*cols+int(n.feat)] > n.thr)
				}
			} else {
				for r, i := range idx {
					n := &nodes[i]
					k := n.kids
					if rows[r*cols+int(n.feat)] > n.thr {
						k++
					}
					idx[r] = k
				}
			}
			if withContrib && !branchFree {
				ic = f.attrStep(ic, row0, contrib)
			}
		}
		if withContrib && branchFree {
			// after the rows' branch-free walks, not beside them: its
			// mispredicted branches would stall them (the tree's nodes
			// are in the cache now)
			for range depth {
				ic = f.attrStep(ic, row0, contrib)
			}
		}
		for r, i := range idx {
			out[r] += inner[i]
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

// branchFreeRows is the fewest rows margins walks without branches.
const branchFreeRows = 8

// b2i is 1 for true, 0 for false, without a branch (the compiler keeps a
// branch for a condition that chooses a load's address, which in a walk
// mispredicts at about every other level).
func b2i(b bool) int32 { return int32(*(*uint8)(unsafe.Pointer(&b))) }

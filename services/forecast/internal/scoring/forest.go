package scoring

import "github.com/stockcast/stockcast/pkg/gbt"

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
	nodes []flatNode
	// inner[i] is node i's value (the mean of its leaves, for the path
	// attributions), apart because prediction never reads it
	inner []float64
}

// flatNode is a split (feat >= 0: go to kids, or kids+1 when the row's
// feat value is above thr) or a leaf (feat < 0, value thr).
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
	type item struct{ src, dst int32 }
	nodes := tree.Nodes
	root := int32(len(f.nodes))
	f.roots = append(f.roots, root)
	f.nodes = append(f.nodes, flatNode{})
	f.inner = append(f.inner, 0)
	queue := []item{{0, root}}
	for len(queue) > 0 {
		it := queue[0]
		queue = queue[1:]
		n := nodes[it.src]
		f.inner[it.dst] = n.Value
		if n.Left < 0 {
			f.nodes[it.dst] = flatNode{thr: n.Value, feat: -1}
			continue
		}
		kids := int32(len(f.nodes))
		f.nodes = append(f.nodes, flatNode{}, flatNode{})
		f.inner = append(f.inner, 0, 0)
		f.nodes[it.dst] = flatNode{thr: n.Threshold, feat: n.Feature, kids: kids}
		queue = append(queue, item{n.Left, kids}, item{n.Right, kids + 1})
	}
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
		for n := &nodes[i]; n.feat >= 0; n = &nodes[i] {
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
// tree's nodes stay in the cache across the rows.
func (f *forest) margins(rows []float64, cols int, out []float64) {
	for r := range out {
		out[r] = f.base
	}
	nodes := f.nodes
	for _, root := range f.roots {
		for r := range out {
			row := rows[r*cols : (r+1)*cols : (r+1)*cols]
			n := &nodes[root]
			for n.feat >= 0 {
				k := n.kids
				if row[n.feat] > n.thr {
					k++
				}
				n = &nodes[k]
			}
			out[r] += n.thr
		}
	}
}

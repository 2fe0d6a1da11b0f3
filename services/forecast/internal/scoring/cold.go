package scoring

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"unique"

	"github.com/stockcast/stockcast/pkg/forecasting"
)

// coldSeries is a series kept compact (the cache's series whose latest
// forecast is not kept whole: most of them). Its numbers are one byte
// slice, which the garbage collector does not scan: ~2.3 KB for a real
// series instead of the 4,096-byte allocation of a series, and its global
// part's ~1.7 KB (globalPart and its numbers) in ~1 KB more. Decoding
// gives back the series bit for bit (TestColdRoundTrip).
type coldSeries struct {
	key string
	// packed holds, in order: flags (coldSyncedOK...), synced and
	// lastStart (varints), prev's total and level, the state and the
	// window's values (compact forms, forecasting.State.AppendCompact),
	// the window's censored bits (uvarints), then the global part if
	// any (appendPart)
	packed []byte
	// version is prev.globalVersion (the model's version string, one
	// pointer for every series of the model), if coldVersion
	version unique.Handle[string]
}

// flags of coldSeries.packed
const (
	coldSyncedOK = 1 << iota
	coldPrevOK
	coldPrevLevel
	coldVersion // prev.globalVersion is not ""
	coldGlobal  // a global part follows
)

// encodeCold returns the compact form of s, built in scratch (returned for
// the next call: the form is copied into a slice of its own size).
func encodeCold(s *series, scratch []byte) (*coldSeries, []byte) {
	b := scratch[:0]
	flags := byte(0)
	if s.syncedOK {
		flags |= coldSyncedOK
	}
	if s.prev.ok {
		flags |= coldPrevOK
	}
	if s.prev.hasLevel {
		flags |= coldPrevLevel
	}
	if s.prev.globalVersion != "" {
		flags |= coldVersion
	}
	if s.global != nil {
		flags |= coldGlobal
	}
	b = append(b, flags)
	b = binary.AppendVarint(b, int64(s.synced))
	b = binary.AppendVarint(b, int64(s.lastStart))
	prev := [2]float64{s.prev.total, s.prev.level}
	b = forecasting.AppendCompactFloats(b, prev[:])
	b = s.state.AppendCompact(b)
	b = forecasting.AppendCompactFloats(b, s.win.values[:])
	for _, w := range s.win.censored {
		b = binary.AppendUvarint(b, w)
	}
	if s.global != nil {
		b = appendPart(b, s.global, s.prev.globalVersion)
	}
	c := &coldSeries{key: s.key, packed: append([]byte(nil), b...)}
	if s.prev.globalVersion != "" {
		c.version = unique.Make(s.prev.globalVersion)
	}
	return c, b
}

// decode returns the series c was made from (a new copy, with a new copy
// of its global part). The bytes are this process's own: a failure is a
// bug, and panics.
func (c *coldSeries) decode() *series {
	s := &series{key: c.key}
	if err := c.decodeInto(s); err != nil {
		panic(fmt.Sprintf("scoring: cold series %q: %v", c.key, err))
	}
	return s
}

var errColdShort = errors.New("truncated")

func (c *coldSeries) decodeInto(s *series) error {
	b := c.packed
	if len(b) == 0 {
		return errColdShort
	}
	flags := b[0]
	b = b[1:]
	s.syncedOK = flags&coldSyncedOK != 0
	s.prev.ok = flags&coldPrevOK != 0
	s.prev.hasLevel = flags&coldPrevLevel != 0
	if flags&coldVersion != 0 {
		s.prev.globalVersion = c.version.Value()
	}
	for _, d := range []*forecasting.Day{&s.synced, &s.lastStart} {
		v, n := binary.Varint(b)
		if n <= 0 {
			return errColdShort
		}
		*d, b = forecasting.Day(v), b[n:]
	}
	var prev [2]float64
	var err error
	if b, err = forecasting.ReadCompactFloats(b, prev[:]); err != nil {
		return err
	}
	s.prev.total, s.prev.level = prev[0], prev[1]
	if b, err = s.state.ReadCompact(b); err != nil {
		return err
	}
	if b, err = forecasting.ReadCompactFloats(b, s.win.values[:]); err != nil {
		return err
	}
	for i := range s.win.censored {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return errColdShort
		}
		s.win.censored[i], b = v, b[n:]
	}
	s.global = nil
	if flags&coldGlobal != 0 {
		if s.global, b, err = readPart(b, s.prev.globalVersion); err != nil {
			return err
		}
	}
	if len(b) != 0 {
		return fmt.Errorf("%d bytes after the series", len(b))
	}
	return nil
}

// flags of a global part's compact form
const (
	partOwnVersion = 1 << iota // its version is not the series' prev.globalVersion: written out
	partMeansSum               // means[h] = stable[h] + volatile[h] (not written)
	partMeansExp               // means[h] = exp(stable[h] + volatile[h]) (not written)
	partChange                 // change is not nil
)

// partSlices is the number of a part's slices of numbers: means, stable,
// volatile, values, stableContrib, contrib, change.
const partSlices = 7

// appendPart appends the compact form of a cached global part g (its
// numbers; msg, comps and factors are nil in the cache: globalPart.compact)
// to dst. What it leaves out is made again exactly: the means from the
// margins (when they are their sum or its exp, as predict makes them:
// checked bit for bit here, else written), the version from the series'
// (when equal). contrib is written XOR stableContrib: the features no
// volatile tree attributes to are equal, and take a nibble each.
func appendPart(dst []byte, g *globalPart, version string) []byte {
	flags := byte(0)
	if g.version != version {
		flags |= partOwnVersion
	}
	if len(g.stable) == len(g.means) && len(g.volatile) == len(g.means) {
		sum, exp := true, true
		for h, m := range g.means {
			x := g.stable[h] + g.volatile[h]
			sum = sum && math.Float64bits(x) == math.Float64bits(m)
			exp = exp && math.Float64bits(math.Exp(x)) == math.Float64bits(m)
		}
		switch {
		case sum:
			flags |= partMeansSum
		case exp:
			flags |= partMeansExp
		}
	}
	if g.change != nil {
		flags |= partChange
	}
	dst = append(dst, flags)
	appendString := func(dst []byte, s string) []byte {
		return append(binary.AppendUvarint(dst, uint64(len(s))), s...)
	}
	if flags&partOwnVersion != 0 {
		dst = appendString(dst, g.version)
	}
	dst = appendString(appendString(dst, g.dept), g.cat)
	dst = binary.AppendVarint(dst, int64(g.start))
	scalars := [3]float64{g.price, g.bias, g.stableBias}
	dst = forecasting.AppendCompactFloats(dst, scalars[:])
	var buf [64]float64
	x := buf[:0]
	if len(g.contrib) > len(buf) {
		x = make([]float64, 0, len(g.contrib))
	}
	for k, c := range g.contrib {
		w := math.Float64bits(c)
		if k < len(g.stableContrib) {
			w ^= math.Float64bits(g.stableContrib[k])
		}
		x = append(x, math.Float64frombits(w))
	}
	// the lengths (partSlices), then the numbers
	slices := [partSlices][]float64{g.means, g.stable, g.volatile, g.values, g.stableContrib, x, g.change}
	for _, v := range slices {
		dst = binary.AppendUvarint(dst, uint64(len(v)))
	}
	if flags&(partMeansSum|partMeansExp) != 0 {
		slices[0] = nil // made again from the margins
	}
	for _, v := range slices {
		dst = forecasting.AppendCompactFloats(dst, v)
	}
	return dst
}

// readPart reads a global part written by appendPart at the start of src
// (its numbers in one allocation, as predict makes them), and returns the
// rest of src.
func readPart(src []byte, version string) (*globalPart, []byte, error) {
	if len(src) == 0 {
		return nil, src, errColdShort
	}
	flags := src[0]
	src = src[1:]
	readString := func() (string, bool) {
		n, k := binary.Uvarint(src)
		if k <= 0 || n > uint64(len(src)-k) {
			return "", false
		}
		s := string(src[k : k+int(n)])
		src = src[k+int(n):]
		return s, true
	}
	g := &globalPart{version: version}
	ok := true
	if flags&partOwnVersion != 0 {
		g.version, ok = readString()
	}
	if ok {
		g.dept, ok = readString()
	}
	if ok {
		g.cat, ok = readString()
	}
	if !ok {
		return nil, src, errColdShort
	}
	start, k := binary.Varint(src)
	if k <= 0 {
		return nil, src, errColdShort
	}
	g.start, src = forecasting.Day(start), src[k:]
	var scalars [3]float64
	var err error
	if src, err = forecasting.ReadCompactFloats(src, scalars[:]); err != nil {
		return nil, src, err
	}
	g.price, g.bias, g.stableBias = scalars[0], scalars[1], scalars[2]
	// the slices' lengths, then their numbers, in one allocation
	var lens [partSlices]int
	total := 0
	for i := range lens {
		n, k := binary.Uvarint(src)
		if k <= 0 || n > uint64(2*len(src)) { // a number takes half a byte at least
			return nil, src, errColdShort
		}
		lens[i], total, src = int(n), total+int(n), src[k:]
	}
	nums := make([]float64, total)
	var v [partSlices][]float64
	for i, n := range lens {
		v[i], nums = nums[:n:n], nums[n:]
		if i == 0 && flags&(partMeansSum|partMeansExp) != 0 {
			continue
		}
		if src, err = forecasting.ReadCompactFloats(src, v[i]); err != nil {
			return nil, src, err
		}
	}
	g.means, g.stable, g.volatile, g.values, g.stableContrib, g.contrib = v[0], v[1], v[2], v[3], v[4], v[5]
	if flags&partChange != 0 {
		g.change = v[6]
	}
	if flags&(partMeansSum|partMeansExp) != 0 {
		if len(g.stable) != len(g.means) || len(g.volatile) != len(g.means) {
			return nil, src, errors.New("global part: margins of another length than the means")
		}
		for h := range g.means {
			g.means[h] = g.stable[h] + g.volatile[h]
			if flags&partMeansExp != 0 {
				g.means[h] = math.Exp(g.means[h])
			}
		}
	}
	for k := range min(len(g.contrib), len(g.stableContrib)) {
		g.contrib[k] = math.Float64frombits(math.Float64bits(g.contrib[k]) ^ math.Float64bits(g.stableContrib[k]))
	}
	return g, src, nil
}

// ColdSeries returns the number of series in memory kept compact (of
// Series).
func (s *Scorer) ColdSeries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cache.cold.Len()
}

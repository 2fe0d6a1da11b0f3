package forecasting

import (
	"math"
	"math/rand/v2"
	"testing"
	"unsafe"
)

// TestCompactRoundTrip: the compact form of real series' states (the M5
// tiny series at every 97th day of their history, some days censored)
// decodes to the same state, bit for bit, and re-encodes to the same
// bytes; cut short it does not decode; the series' last states are at most
// 0.72 of the State's size on average (every float of a member's state
// keeps its mantissa; the demand windows and counters are small).
func TestCompactRoundTrip(t *testing.T) {
	series := loadM5(t)
	var total, states int
	var buf []byte
	for k, m := range series {
		var s State
		for i, d := range m.Days {
			s.Observe(d, m.Values[i], (i+k)%53 == 0)
			if i%97 != 96 && i != len(m.Days)-1 {
				continue
			}
			buf = s.AppendCompact(buf[:0])
			if i == len(m.Days)-1 {
				total += len(buf)
				states++
			}
			var got State
			rest, err := got.ReadCompact(append(buf, 7))
			if err != nil {
				t.Fatalf("%s day %d: %v", m.ID, d, err)
			}
			if len(rest) != 1 || rest[0] != 7 {
				t.Fatalf("%s day %d: %d bytes left after the state, want the 1 appended", m.ID, d, len(rest))
			}
			if got != s || !sameWords(got.words(), s.words()) {
				t.Fatalf("%s day %d: the decoded state differs", m.ID, d)
			}
			if again := got.AppendCompact(nil); string(again) != string(buf) {
				t.Fatalf("%s day %d: re-encoded to %d bytes, first %d", m.ID, d, len(again), len(buf))
			}
			if k >= 10 || i != len(m.Days)-1 {
				continue
			}
			for cut := range len(buf) {
				if _, err := got.ReadCompact(buf[:cut]); err == nil {
					t.Fatalf("%s day %d: a state cut at %d of %d bytes decoded", m.ID, d, cut, len(buf))
				}
			}
		}
	}
	mean := float64(total) / float64(states)
	t.Logf("%d series' last states: %.0f bytes compact on average, %d in memory (%.3f)", states, mean, unsafe.Sizeof(State{}), mean/float64(unsafe.Sizeof(State{})))
	if mean > 0.72*float64(unsafe.Sizeof(State{})) {
		t.Errorf("compact states average %.0f bytes, want at most 0.72 of %d", mean, unsafe.Sizeof(State{}))
	}
}

func sameWords(a, b []uint64) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return len(a) == len(b)
}

// TestCompactTags: each word takes the shortest of its encodings, and the
// encoded length is exactly the tag bytes plus those payloads.
func TestCompactTags(t *testing.T) {
	one := math.Float64bits(1)
	for _, c := range []struct {
		name  string
		words []uint64
		n     int // encoded bytes
	}{
		{"zeros", []uint64{0, 0, 0}, 2},
		{"small ints", []uint64{1, 0xff, 0x100, 0xffffffff}, 2 + 1 + 1 + 2 + 4},
		{"int32 pair", []uint64{0x0000000700004e20}, 1 + 5}, // 5 low bytes: XOR with the 0 before
		{"whole floats", []uint64{math.Float64bits(3), math.Float64bits(1000), math.Float64bits(0.5)}, 2 + 2 + 3 + 2},
		{"close floats", []uint64{math.Float64bits(math.Pi), math.Float64bits(math.Pi + 1e-9)}, 1 + 8 + 3},
		{"equal floats", []uint64{math.Float64bits(math.E), math.Float64bits(math.E)}, 1 + 8 + 1},
		{"raw", []uint64{math.Float64bits(math.Pi), math.Float64bits(-math.E)}, 1 + 8 + 8},
		{"xor after a whole float", []uint64{one, one | 0x5}, 1 + 2 + 1},
		{"negative zero", []uint64{math.Float64bits(math.Copysign(0, -1))}, 1 + 1},
	} {
		v := make([]float64, len(c.words))
		for i, w := range c.words {
			v[i] = math.Float64frombits(w)
		}
		enc := AppendCompactFloats(nil, v)
		if len(enc) != c.n {
			t.Errorf("%s: %d bytes, want %d", c.name, len(enc), c.n)
		}
		got := make([]float64, len(v))
		if rest, err := ReadCompactFloats(enc, got); err != nil || len(rest) != 0 {
			t.Fatalf("%s: %v, %d bytes left", c.name, err, len(rest))
		}
		for i := range got {
			if math.Float64bits(got[i]) != c.words[i] {
				t.Errorf("%s: word %d decoded %#x, want %#x", c.name, i, math.Float64bits(got[i]), c.words[i])
			}
		}
	}
}

// TestCompactRandomWords: arrays of every length up to 40 of words of
// every kind (zero, small, whole floats, floats close to the word before,
// any bits, NaN payloads) decode bit for bit.
func TestCompactRandomWords(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	for trial := range 2000 {
		n := trial % 41
		v := make([]float64, n)
		for i := range v {
			var w uint64
			switch rng.IntN(6) {
			case 0:
			case 1:
				w = rng.Uint64() >> (8 * rng.IntN(8))
			case 2:
				w = math.Float64bits(float64(rng.IntN(5000)))
			case 3:
				if i > 0 {
					w = math.Float64bits(v[i-1]) ^ rng.Uint64()>>(8*rng.IntN(8)+1)
				}
			case 4:
				w = rng.Uint64()
			case 5:
				w = 0x7ff0000000000001 | rng.Uint64()&0x000fffffffffffff
			}
			v[i] = math.Float64frombits(w)
		}
		enc := AppendCompactFloats([]byte{9}, v)
		got := make([]float64, n)
		rest, err := ReadCompactFloats(enc[1:], got)
		if err != nil || len(rest) != 0 {
			t.Fatalf("trial %d: %v, %d bytes left", trial, err, len(rest))
		}
		for i := range v {
			if math.Float64bits(got[i]) != math.Float64bits(v[i]) {
				t.Fatalf("trial %d word %d: %#x, want %#x", trial, i, math.Float64bits(got[i]), math.Float64bits(v[i]))
			}
		}
	}
}

package forecasting

import (
	"encoding/binary"
	"errors"
	"math/bits"
	"slices"
	"unsafe"
)

// The compact form of a State: an exact (bit for bit) encoding for keeping
// many states in memory, not a storage format (MarshalBinary is): it
// encodes the State's memory as 8-byte words, so its layout is this
// build's. A state of a real series is ~2.2 KB compact instead of 3,264
// bytes (most of its words are the members' smoothed levels, scores and
// forecasts: floats with all their mantissa bits; the demand windows and
// the counters are small integers, the unused slots zero).
//
// Words go in pairs: a tag byte (a nibble per word) then the words'
// payloads. A word's tag is the shortest of:
//
//	0       the word is 0 (no payload)
//	1..4    its low n bytes (the others are 0: counters, days, flags)
//	5..7    its high n-4 bytes (the others are 0: small whole floats, e.g. a day's demand)
//	8       all 8 bytes
//	9..15   the low n-8 bytes of the word XOR the word before it (a float close to
//	        its neighbour: consecutive days' forecasts of a member, or of a total)

// stateWords is the State's size in words.
const stateWords = int(unsafe.Sizeof(State{}) / 8)

// the State is a whole number of words, and aligned to them
var _ = [1]struct{}{}[unsafe.Sizeof(State{})%8+unsafe.Alignof(State{})%8]

func (s *State) words() []uint64 {
	return unsafe.Slice((*uint64)(unsafe.Pointer(s)), stateWords)
}

// AppendCompact appends the compact form of s to dst.
func (s *State) AppendCompact(dst []byte) []byte { return appendWords(dst, s.words()) }

// ReadCompact sets s from the compact form at the start of src (written by
// AppendCompact of this build) and returns the rest of src.
func (s *State) ReadCompact(src []byte) ([]byte, error) { return readWords(src, s.words()) }

// AppendCompactFloats appends the compact form of v (the State's encoding,
// for other arrays of floats) to dst; ReadCompactFloats reads it back into
// a slice of the same length.
func AppendCompactFloats(dst []byte, v []float64) []byte {
	return appendWords(dst, unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(v))), len(v)))
}

// ReadCompactFloats sets v from the compact form at the start of src
// (written by AppendCompactFloats of len(v) floats) and returns the rest of
// src.
func ReadCompactFloats(src []byte, v []float64) ([]byte, error) {
	return readWords(src, unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(v))), len(v)))
}

var errCompactShort = errors.New("compact state: truncated")

// wordTag returns the tag of w after prev and its payload's length.
func wordTag(w, prev uint64) (tag byte, n int) {
	if w == 0 {
		return 0, 0
	}
	tag, n = 8, 8
	if l := (bits.Len64(w) + 7) / 8; l <= 4 {
		return byte(l), l
	}
	if h := (64 - bits.TrailingZeros64(w) + 7) / 8; h <= 3 {
		tag, n = byte(4+h), h
	}
	if x := max((bits.Len64(w^prev)+7)/8, 1); x < n {
		tag, n = byte(8+x), x
	}
	return tag, n
}

func appendWords(dst []byte, ws []uint64) []byte {
	// room for the worst case: every word whole, then written 8 bytes
	// at a time and cut to its payload
	n := len(dst)
	dst = slices.Grow(dst, (len(ws)+1)/2+8*len(ws)+8)
	dst = dst[:cap(dst)]
	prev := uint64(0)
	for i := 0; i < len(ws); i += 2 {
		t0, n0 := wordTag(ws[i], prev)
		at := n
		n++
		n += putPayload(dst[n:], t0, n0, ws[i], prev)
		prev = ws[i]
		if i+1 < len(ws) {
			t1, n1 := wordTag(ws[i+1], prev)
			n += putPayload(dst[n:], t1, n1, ws[i+1], prev)
			prev = ws[i+1]
			t0 |= t1 << 4
		}
		dst[at] = t0
	}
	return dst[:n]
}

// putPayload writes the payload of w (tag, n bytes) at the start of dst,
// which has room for 8 bytes, and returns n.
func putPayload(dst []byte, tag byte, n int, w, prev uint64) int {
	switch {
	case tag >= 9:
		w ^= prev
	case tag >= 5 && tag <= 7:
		w = bits.ReverseBytes64(w)
	}
	binary.LittleEndian.PutUint64(dst, w)
	return n
}

func readWords(src []byte, ws []uint64) ([]byte, error) {
	prev := uint64(0)
	for i := 0; i < len(ws); i += 2 {
		if len(src) == 0 {
			return nil, errCompactShort
		}
		tags := src[0]
		src = src[1:]
		for j := i; j < min(i+2, len(ws)); j++ {
			tag := tags & 0xf
			tags >>= 4
			n := int(payloadLen[tag])
			if len(src) < n {
				return nil, errCompactShort
			}
			var v uint64
			if len(src) >= 8 {
				v = binary.LittleEndian.Uint64(src)
				if n < 8 {
					v &= 1<<(8*n) - 1
				}
			} else {
				for k := n - 1; k >= 0; k-- {
					v = v<<8 | uint64(src[k])
				}
			}
			src = src[n:]
			switch {
			case tag >= 9:
				v ^= prev
			case tag >= 5 && tag <= 7:
				v = bits.ReverseBytes64(v)
			}
			ws[j], prev = v, v
		}
	}
	return src, nil
}

// payloadLen is the payload's length by tag.
var payloadLen = [16]byte{0, 1, 2, 3, 4, 1, 2, 3, 8, 1, 2, 3, 4, 5, 6, 7}

package forecasting

import (
	"errors"
	"math/bits"
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
	prev := uint64(0)
	for i := 0; i < len(ws); i += 2 {
		t0, _ := wordTag(ws[i], prev)
		t1 := byte(0)
		if i+1 < len(ws) {
			t1, _ = wordTag(ws[i+1], ws[i])
		}
		dst = append(dst, t0|t1<<4)
		dst = appendPayload(dst, t0, ws[i], prev)
		if i+1 < len(ws) {
			dst = appendPayload(dst, t1, ws[i+1], ws[i])
			prev = ws[i+1]
		}
	}
	return dst
}

func appendPayload(dst []byte, tag byte, w, prev uint64) []byte {
	switch {
	case tag == 0:
		return dst
	case tag <= 4 || tag == 8:
		return appendLow(dst, w, int(min(tag, 8)))
	case tag <= 7:
		return appendLow(dst, bits.ReverseBytes64(w), int(tag-4))
	default:
		return appendLow(dst, w^prev, int(tag-8))
	}
}

func appendLow(dst []byte, w uint64, n int) []byte {
	for range n {
		dst = append(dst, byte(w))
		w >>= 8
	}
	return dst
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
			var n int
			switch {
			case tag <= 4:
				n = int(tag)
			case tag <= 8:
				n = int(tag) - 4
				if tag == 8 {
					n = 8
				}
			default:
				n = int(tag) - 8
			}
			if len(src) < n {
				return nil, errCompactShort
			}
			v := uint64(0)
			for k := n - 1; k >= 0; k-- {
				v = v<<8 | uint64(src[k])
			}
			src = src[n:]
			switch {
			case tag > 8:
				v ^= prev
			case tag >= 5 && tag <= 7:
				v = bits.ReverseBytes64(v)
			}
			ws[j], prev = v, v
		}
	}
	return src, nil
}

package scoring

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/stockcast/stockcast/pkg/forecasting"
)

// coldSeries is a series kept compact (the cache's series whose latest
// forecast is not kept whole: most of them). Its numbers are one byte
// slice, which the garbage collector does not scan: ~2.3 KB for a real
// series instead of the 4,096-byte allocation of a series. Decoding gives
// back the series bit for bit (TestColdRoundTrip).
type coldSeries struct {
	key string
	// packed holds, in order: flags (coldSyncedOK...), synced and
	// lastStart (varints), prev's total and level, the state and the
	// window's values (compact forms, forecasting.State.AppendCompact),
	// the window's censored bits (uvarints)
	packed []byte
	global *globalPart
	// globalVersion is prev.globalVersion (the model's version string,
	// shared, not copied)
	globalVersion string
}

// flags of coldSeries.packed
const (
	coldSyncedOK = 1 << iota
	coldPrevOK
	coldPrevLevel
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
	return &coldSeries{key: s.key, packed: append([]byte(nil), b...), global: s.global, globalVersion: s.prev.globalVersion}, b
}

// decode returns the series c was made from (a new copy). The bytes are
// this process's own: a failure is a bug, and panics.
func (c *coldSeries) decode() *series {
	s := &series{key: c.key, global: c.global}
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
	s.prev.globalVersion = c.globalVersion
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
	if len(b) != 0 {
		return fmt.Errorf("%d bytes after the series", len(b))
	}
	return nil
}

// ColdSeries returns the number of series in memory kept compact (of
// Series).
func (s *Scorer) ColdSeries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cache.cold.Len()
}

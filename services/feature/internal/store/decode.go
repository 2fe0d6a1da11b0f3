package store

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/stockcast/stockcast/services/feature/internal/features"
)

// DecodeState reads a series hash as written by series.lua.
func DecodeState(h map[string]string) (features.State, error) {
	var st features.State
	var errs []error
	num := func(field string) int64 {
		v, ok := h[field]
		if !ok {
			return 0
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("field %s: %w", field, err))
		}
		return n
	}
	ms := func(field string) time.Time {
		if _, ok := h[field]; !ok {
			return time.Time{}
		}
		return time.UnixMilli(num(field)).UTC()
	}

	if _, ok := h["end"]; ok {
		st.HasDays = true
		st.Ring.End = features.Day(num("end"))
		st.Since = features.Day(num("since"))
		days, bits := h["days"], h["outdays"]
		if len(days) > features.RingDays*4 || len(days)%4 != 0 || len(bits) != features.RingDays/8 {
			return st, fmt.Errorf("decode series state: days %d bytes, outdays %d bytes", len(days), len(bits))
		}
		// The whole slot ring (slot = day mod RingDays), or compact: the
		// last len/4 days ending at end, oldest first (series.lua).
		first := 0
		if n := len(days) / 4; n < features.RingDays {
			first = features.Slot(st.Ring.End - features.Day(n) + 1)
		}
		for i := range len(days) / 4 {
			v := int32(binary.LittleEndian.Uint32([]byte(days[i*4:])))
			st.Ring.Demand[(first+i)%features.RingDays] = float64(v) / 1000
		}
		for i := range features.RingDays {
			st.Ring.Stockout[i] = bits[i/8]&(1<<(i%8)) != 0
		}
	}
	if hours, ok := h["hours"]; ok {
		if len(hours) != 24*8 {
			return st, fmt.Errorf("decode series state: hours %d bytes", len(hours))
		}
		for i := range 24 {
			st.Hourly[i] = math.Float64frombits(binary.LittleEndian.Uint64([]byte(hours[i*8:]))) / 1000
		}
	}
	if _, ok := h["first"]; ok {
		st.HasSale = true
		st.FirstSale, st.LastSale = features.Day(num("first")), features.Day(num("last"))
	}
	st.TotalDemand = float64(num("total")) / 1000
	st.EventsApplied = num("events")
	if p, ok := h["price"]; ok {
		v, err := strconv.ParseFloat(p, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("field price: %w", err))
		}
		st.Price = v
	}
	st.Stockout = h["out"] == "1"
	st.PromotionID = h["promo"]
	st.PromotionStart, st.PromotionEnd = ms("promo_from"), ms("promo_to")
	st.LatestAt = ms("latest_at")
	st.LastEventID, st.LastEventAt = h["event"], ms("event_at")
	if len(errs) > 0 {
		return st, fmt.Errorf("decode series state: %v", errs)
	}
	return st, nil
}

package planning

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	demandv1 "github.com/stockcast/stockcast/proto/stockcast/demand/v1"
	forecastv1 "github.com/stockcast/stockcast/proto/stockcast/forecast/v1"
)

// The series' latest forecast (LatestForecast) is kept in a compact binary
// layout, not as protobuf: the lead-time quantiles the forecast service
// publishes are counts (countDist's smallest k with P(X <= k) >= level),
// non-decreasing in the level, so each is kept as the varint of its step
// from the one before instead of 8 bytes; the forecast service's default
// quantile levels are kept as a flag. Every number round-trips bit for bit
// (a value that is not an integer below 2^53, or is -0, is kept as its 8
// bytes), so DecodeLatest(EncodeLatest(ev)) is proto.Equal to ev: decisions
// from it are the decisions from LatestForecast. A key written before this
// layout (protobuf) still reads: a protobuf message never starts with a 0
// byte (field number 0 is invalid), this layout always does.
//
//	0x00 0x01                                     magic, version
//	uvarint flags                                 1 as_of, 2 cause's occurred_at, 4 default levels
//	string forecast_id, event_id, start_day, demand_class (uvarint length, bytes)
//	[as_of: zigzag seconds, uvarint nanos]        with flag 1
//	[occurred_at: zigzag seconds, uvarint nanos]  with flag 2
//	[uvarint n, n numbers]                        levels, without flag 4
//	uvarint n, n numbers                          daily means
//	uvarint n, per lead time: zigzag days, zigzag review period days,
//	  number mean, uvarint m, m numbers (each an integer's step from the
//	  previous integer of the list)                lead-time demand
//
// A number is uvarint(zigzag(k - prev) << 1) for an integer value k (|k| <
// 2^53, not -0), or the byte 1 and the value's 8 bytes (little endian).
const (
	latestMagic   = 0x00
	latestVersion = 0x01

	latestAsOf          = 1
	latestOccurredAt    = 2
	latestDefaultLevels = 4
)

// defaultLevels are the forecast service's default quantile levels
// (forecasting.DefaultQuantileLevels) when this layout was made, kept as a
// flag; fixed here, so a later change of the default does not change what
// a stored flag means (TestLatestDefaultLevels).
var defaultLevels = []float64{0.005, 0.025, 0.05, 0.1, 0.165, 0.25, 0.5, 0.75, 0.835, 0.9, 0.95, 0.975, 0.99, 0.995}

// EncodeLatest is the compact layout of a latest forecast (LatestForecast's
// fields; any others are not kept).
func EncodeLatest(ev *forecastv1.ForecastEvent) []byte {
	b := make([]byte, 0, 512)
	b = append(b, latestMagic, latestVersion)
	var flags uint64
	if ev.GetAsOf() != nil {
		flags |= latestAsOf
	}
	if ev.GetCause().GetOccurredAt() != nil {
		flags |= latestOccurredAt
	}
	levels := ev.GetQuantileLevels()
	if len(levels) > 0 && slices.Equal(levels, defaultLevels) && !hasNegZero(levels) {
		flags |= latestDefaultLevels
	}
	b = binary.AppendUvarint(b, flags)
	for _, s := range []string{ev.GetForecastId(), ev.GetEventId(), ev.GetStartDay(), ev.GetDemandClass()} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	if flags&latestAsOf != 0 {
		b = appendTime(b, ev.GetAsOf())
	}
	if flags&latestOccurredAt != 0 {
		b = appendTime(b, ev.GetCause().GetOccurredAt())
	}
	if flags&latestDefaultLevels == 0 {
		b = appendNumbers(b, levels, false)
	}
	b = binary.AppendUvarint(b, uint64(len(ev.GetDaily())))
	for _, d := range ev.GetDaily() {
		b = appendNumber(b, d.GetMean(), 0)
	}
	b = binary.AppendUvarint(b, uint64(len(ev.GetLeadTimeDemand())))
	for _, l := range ev.GetLeadTimeDemand() {
		b = binary.AppendVarint(b, int64(l.GetLeadTimeDays()))
		b = binary.AppendVarint(b, int64(l.GetReviewPeriodDays()))
		b = appendNumber(b, l.GetMean(), 0)
		b = appendNumbers(b, l.GetQuantiles(), true)
	}
	return b
}

// DecodeLatest reads a latest forecast in the compact layout or, written
// before it, as protobuf.
func DecodeLatest(raw []byte) (*forecastv1.ForecastEvent, error) {
	ev := &forecastv1.ForecastEvent{}
	if len(raw) == 0 || raw[0] != latestMagic {
		if err := proto.Unmarshal(raw, ev); err != nil {
			return nil, err
		}
		return ev, nil
	}
	d := latestReader{b: raw}
	if d.byte() != latestMagic || d.byte() != latestVersion {
		return nil, fmt.Errorf("latest forecast: unknown layout version %d", raw[min(1, len(raw)-1)])
	}
	flags := d.uvarint()
	ev.ForecastId, ev.EventId, ev.StartDay, ev.DemandClass = d.string(), d.string(), d.string(), d.string()
	if flags&latestAsOf != 0 {
		ev.AsOf = d.time()
	}
	if flags&latestOccurredAt != 0 {
		ev.Cause = &demandv1.DemandEvent{OccurredAt: d.time()}
	}
	if flags&latestDefaultLevels != 0 {
		ev.QuantileLevels = slices.Clone(defaultLevels)
	} else {
		ev.QuantileLevels = d.numbers(false)
	}
	if n := d.count(); n > 0 {
		days := make([]forecastv1.DailyForecast, n)
		ev.Daily = make([]*forecastv1.DailyForecast, n)
		for i := range days {
			days[i].Mean = d.number(0)
			ev.Daily[i] = &days[i]
		}
	}
	if n := d.count(); n > 0 {
		lts := make([]forecastv1.LeadTimeDemand, n)
		ev.LeadTimeDemand = make([]*forecastv1.LeadTimeDemand, n)
		for i := range lts {
			l := &lts[i]
			l.LeadTimeDays, l.ReviewPeriodDays = d.int32(), d.int32()
			l.Mean = d.number(0)
			l.Quantiles = d.numbers(true)
			ev.LeadTimeDemand[i] = l
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%d bytes after the end", len(d.b))
	}
	if d.err != nil {
		return nil, fmt.Errorf("latest forecast: %w", d.err)
	}
	return ev, nil
}

func hasNegZero(xs []float64) bool {
	for _, x := range xs {
		if x == 0 && math.Signbit(x) {
			return true
		}
	}
	return false
}

func appendTime(b []byte, t *timestamppb.Timestamp) []byte {
	b = binary.AppendVarint(b, t.GetSeconds())
	return binary.AppendUvarint(b, uint64(uint32(t.GetNanos())))
}

// exactInt is x as an integer when that is exact and the integer path
// gives x back bit for bit.
func exactInt(x float64) (int64, bool) {
	if x != math.Trunc(x) || math.Abs(x) >= 1<<53 || (x == 0 && math.Signbit(x)) {
		return 0, false // also NaN and ±Inf
	}
	return int64(x), true
}

// appendNumber appends x: an integer as its step from prev, else its bits.
func appendNumber(b []byte, x float64, prev int64) []byte {
	if k, ok := exactInt(x); ok {
		d := k - prev
		return binary.AppendUvarint(b, uint64((d<<1)^(d>>63))<<1)
	}
	b = append(b, 1)
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(x))
}

// appendNumbers appends a list; with steps each integer is kept as its
// step from the list's previous integer (from 0).
func appendNumbers(b []byte, xs []float64, steps bool) []byte {
	b = binary.AppendUvarint(b, uint64(len(xs)))
	var prev int64
	for _, x := range xs {
		b = appendNumber(b, x, prev)
		if k, ok := exactInt(x); ok && steps {
			prev = k
		}
	}
	return b
}

// latestReader reads the compact layout; the first error sticks.
type latestReader struct {
	b   []byte
	err error
}

var errLatestShort = errors.New("truncated")

func (r *latestReader) byte() byte {
	if r.err != nil || len(r.b) == 0 {
		r.fail(errLatestShort)
		return 0xff
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *latestReader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
	r.b = nil
}

func (r *latestReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail(errLatestShort)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *latestReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail(errLatestShort)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *latestReader) int32() int32 {
	v := r.varint()
	if v != int64(int32(v)) {
		r.fail(fmt.Errorf("%d out of int32", v))
		return 0
	}
	return int32(v)
}

// count is a list's length, bounded by the bytes left (each element takes
// at least one).
func (r *latestReader) count() int {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail(errLatestShort)
		return 0
	}
	return int(n)
}

func (r *latestReader) string() string {
	n := r.count()
	if r.err != nil {
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *latestReader) time() *timestamppb.Timestamp {
	return &timestamppb.Timestamp{Seconds: r.varint(), Nanos: int32(uint32(r.uvarint()))}
}

func (r *latestReader) number(prev int64) float64 {
	if r.err != nil {
		return 0
	}
	if len(r.b) > 0 && r.b[0] == 1 {
		if len(r.b) < 9 {
			r.fail(errLatestShort)
			return 0
		}
		x := math.Float64frombits(binary.LittleEndian.Uint64(r.b[1:9]))
		r.b = r.b[9:]
		return x
	}
	v := r.uvarint()
	if v&1 != 0 {
		r.fail(fmt.Errorf("malformed number %d", v))
		return 0
	}
	z := v >> 1
	step := int64(z>>1) ^ -int64(z&1)
	return float64(prev + step)
}

func (r *latestReader) numbers(steps bool) []float64 {
	n := r.count()
	if r.err != nil || n == 0 {
		return nil
	}
	out := make([]float64, n)
	var prev int64
	for i := range out {
		out[i] = r.number(prev)
		if k, ok := exactInt(out[i]); ok && steps {
			prev = k
		}
	}
	return out
}

package consumer

import (
	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers of stockcast.forecast.v1.ForecastEvent and DailyForecast
// (proto/stockcast/forecast/v1/forecast.proto) that the service never
// reads: the event's issue time, model, model version, reason and global
// part, and each day's name and quantiles. forecastOf, LatestForecast and
// the proposal read the rest.
const (
	fieldIssuedAt     = 7
	fieldDaily        = 10
	fieldModel        = 12
	fieldModelVersion = 13
	fieldReason       = 15
	fieldGlobal       = 17

	dailyMeanField = 2
)

// trimForecast is a ForecastEvent's encoding without the fields the service
// never reads (about two thirds of a default event: the daily quantiles,
// reason and global part), so decoding it allocates and parses a third:
// the decoded event is the whole event's with those fields empty. A value
// whose wire format does not parse is returned as it is, so decoding it
// fails as before; bytes inside a dropped field are not parsed (a
// malformed reason or global part no longer makes the record undecodable).
func trimForecast(b []byte) []byte { return appendTrimmed(nil, b) }

// appendTrimmed appends trimForecast(b) to out (a reused buffer: protobuf
// decoding copies what it keeps).
func appendTrimmed(out, b []byte) []byte {
	for rest := b; len(rest) > 0; {
		num, typ, n := protowire.ConsumeTag(rest)
		if n < 0 {
			return b
		}
		m := protowire.ConsumeFieldValue(num, typ, rest[n:])
		if m < 0 {
			return b
		}
		field := rest[:n+m]
		rest = rest[n+m:]
		switch {
		case num == fieldIssuedAt || num == fieldModel || num == fieldModelVersion || num == fieldReason || num == fieldGlobal:
			continue
		case num == fieldDaily && typ == protowire.BytesType:
			day, k := protowire.ConsumeBytes(field[n:])
			if k < 0 {
				return b
			}
			mean, ok := dailyMean(day)
			if !ok {
				return b
			}
			out = protowire.AppendTag(out, fieldDaily, protowire.BytesType)
			out = protowire.AppendBytes(out, mean)
		default:
			out = append(out, field...)
		}
	}
	return out
}

// dailyMean is the last mean field of a DailyForecast's encoding (the one
// decoding keeps; nil without one).
func dailyMean(day []byte) ([]byte, bool) {
	var out []byte
	for rest := day; len(rest) > 0; {
		num, typ, n := protowire.ConsumeTag(rest)
		if n < 0 {
			return nil, false
		}
		m := protowire.ConsumeFieldValue(num, typ, rest[n:])
		if m < 0 {
			return nil, false
		}
		if num == dailyMeanField && typ == protowire.Fixed64Type {
			out = rest[:n+m]
		}
		rest = rest[n+m:]
	}
	return out, true
}

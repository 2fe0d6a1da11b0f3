package forecasting

import (
	"fmt"
	"time"
)

// Day is a calendar day, counted in days since 1970-01-01 (UTC).
type Day int32

// DayOf returns the UTC day of t.
func DayOf(t time.Time) Day {
	return Day(t.UTC().Unix() / 86400)
}

// ParseDay parses "YYYY-MM-DD".
func ParseDay(s string) (Day, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return 0, fmt.Errorf("parse day %q: %w", s, err)
	}
	return DayOf(t), nil
}

// Time returns midnight UTC of the day.
func (d Day) Time() time.Time { return time.Unix(int64(d)*86400, 0).UTC() }

// String formats the day as "YYYY-MM-DD".
func (d Day) String() string { return d.Time().Format(time.DateOnly) }

// Weekday returns the day of the week, Monday = 0 ... Sunday = 6.
func (d Day) Weekday() int {
	// 1970-01-01 was a Thursday (3 with Monday = 0).
	return int(((int64(d)+3)%7 + 7) % 7)
}

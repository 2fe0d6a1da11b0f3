package features

import (
	"fmt"
	"time"
)

// Day is a UTC calendar day, counted in days since 1970-01-01. Integers make
// the ring arithmetic (slot = day mod RingDays) the same in Go and in Lua.
type Day int

const dayLayout = "2006-01-02"

// DayOf returns the UTC day of t.
func DayOf(t time.Time) Day {
	u := t.UTC()
	return Day(time.Date(u.Year(), u.Month(), u.Day(), 0, 0, 0, 0, time.UTC).Unix() / 86400)
}

// ParseDay parses "YYYY-MM-DD".
func ParseDay(s string) (Day, error) {
	t, err := time.Parse(dayLayout, s)
	if err != nil {
		return 0, fmt.Errorf("parse day %q: %w", s, err)
	}
	return DayOf(t), nil
}

// Time returns midnight UTC of d.
func (d Day) Time() time.Time { return time.Unix(int64(d)*86400, 0).UTC() }

// String formats d as "YYYY-MM-DD".
func (d Day) String() string { return d.Time().Format(dayLayout) }

// WeekdayIndex is 0 for Monday ... 6 for Sunday (1970-01-01 was a Thursday).
func (d Day) WeekdayIndex() int { return ((int(d)+3)%7 + 7) % 7 }

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

// String formats the day as "YYYY-MM-DD" (as time.DateOnly).
func (d Day) String() string { return string(d.AppendString(make([]byte, 0, 10))) }

// AppendString appends the day as String formats it to b. A forecast names
// each of its days: the civil date is computed directly (Hinnant's
// days-to-civil) instead of through time.Time.Format, which costs several
// times more.
func (d Day) AppendString(b []byte) []byte {
	z := int64(d) + 719468 // days since 0000-03-01
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era--
	}
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y := yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	dd := doy - (153*mp+2)/5 + 1
	m := mp + 3
	if mp >= 10 {
		m = mp - 9
	}
	if m <= 2 {
		y++
	}
	if y < 0 || y > 9999 {
		return d.Time().AppendFormat(b, time.DateOnly)
	}
	return append(b, byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), '-',
		byte('0'+m/10), byte('0'+m%10), '-', byte('0'+dd/10), byte('0'+dd%10))
}

// Weekday returns the day of the week, Monday = 0 ... Sunday = 6.
func (d Day) Weekday() int {
	// 1970-01-01 was a Thursday (3 with Monday = 0).
	return int(((int64(d)+3)%7 + 7) % 7)
}

package loadgen

import (
	"fmt"
	"math"
	"time"
)

// Profile shapes the rate of a run. Steady spaces events evenly at Rate per
// second; Burst keeps the same mean rate but, in every Period, sends the
// first BurstFraction of the period at BurstFactor times the rate of the
// rest (a flash sale every Period).
type Profile struct {
	Kind          string // "steady" or "burst"
	Rate          float64
	Period        time.Duration // burst only
	BurstFraction float64       // burst only, in (0, 1)
	BurstFactor   float64       // burst only, >= 1
}

// Profile kinds.
const (
	Steady = "steady"
	Burst  = "burst"
)

// Validate checks the profile.
func (p Profile) Validate() error {
	if !(p.Rate > 0) || math.IsInf(p.Rate, 0) {
		return fmt.Errorf("profile rate %v: want a finite rate > 0", p.Rate)
	}
	switch p.Kind {
	case Steady:
		return nil
	case Burst:
		if p.Period <= 0 {
			return fmt.Errorf("burst period %v: want more than 0", p.Period)
		}
		if !(p.BurstFraction > 0 && p.BurstFraction < 1) {
			return fmt.Errorf("burst fraction %v: want it in (0, 1)", p.BurstFraction)
		}
		if !(p.BurstFactor >= 1) || math.IsInf(p.BurstFactor, 0) {
			return fmt.Errorf("burst factor %v: want a finite factor >= 1", p.BurstFactor)
		}
		return nil
	default:
		return fmt.Errorf("profile %q: want %s or %s", p.Kind, Steady, Burst)
	}
}

// baseRate is the rate outside bursts: the mean over a period is Rate.
func (p Profile) baseRate() float64 {
	return p.Rate / (1 - p.BurstFraction + p.BurstFraction*p.BurstFactor)
}

// At returns when event n (0-based) is due, from the start of the run.
func (p Profile) At(n int64) time.Duration {
	x := float64(n)
	if p.Kind != Burst {
		return seconds(x / p.Rate)
	}
	period := p.Period.Seconds()
	perPeriod := p.Rate * period
	base := p.baseRate()
	inBurst := base * p.BurstFactor * p.BurstFraction * period // events of one burst
	k := math.Floor(x / perPeriod)
	r := x - k*perPeriod
	if r < inBurst {
		return seconds(k*period + r/(base*p.BurstFactor))
	}
	return seconds(k*period + p.BurstFraction*period + (r-inBurst)/base)
}

// RateAt returns the instantaneous rate at t.
func (p Profile) RateAt(t time.Duration) float64 {
	if p.Kind != Burst {
		return p.Rate
	}
	into := math.Mod(t.Seconds(), p.Period.Seconds())
	if into < p.BurstFraction*p.Period.Seconds() {
		return p.baseRate() * p.BurstFactor
	}
	return p.baseRate()
}

// Count returns how many events are due before d: the events of a run of
// that duration.
func (p Profile) Count(d time.Duration) int64 {
	// The mean rate bounds the count within one burst of slack; search
	// the exact boundary from there.
	n := int64(math.Max(0, p.Rate*d.Seconds()-1))
	for n > 0 && p.At(n-1) >= d {
		n--
	}
	for p.At(n) < d {
		n++
	}
	return n
}

func seconds(s float64) time.Duration { return time.Duration(math.Round(s * float64(time.Second))) }

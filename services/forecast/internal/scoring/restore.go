package scoring

import (
	"github.com/stockcast/stockcast/pkg/forecasting"
	"github.com/stockcast/stockcast/pkg/topics"
	featurev1 "github.com/stockcast/stockcast/proto/stockcast/feature/v1"
)

// restored is what the scorer would hold of a series not in memory (a
// restart, an eviction), read back from the forecast log: what the next
// forecast's reason reads of the latest forecast published for it (prev)
// and its first day (lastStart), so that the state the scorer held is
// known to have been synced through lastStart-1.
type restored struct {
	prev      prevForecast
	lastStart forecasting.Day
}

// Cold returns the indexes in snaps of the first snapshot of each series
// that is neither in memory nor scored earlier in the batch: the series
// whose previous forecast Restore can give. Nil snapshots, item snapshots
// and invalid ones are skipped.
func (b *Batch) Cold(snaps []*featurev1.FeatureSnapshot) []int {
	var out []int
	seen := make(map[string]bool)
	b.s.mu.Lock()
	defer b.s.mu.Unlock()
	for i, snap := range snaps {
		if snap == nil {
			continue
		}
		k := snap.GetSeriesKey()
		if seen[k] || b.touched[k] != nil || b.s.cache.items[k] != nil {
			continue
		}
		seen[k] = true
		if _, _, isSeries := topics.SplitSeriesKey(k); !isSeries {
			continue
		}
		if _, err := validate(snap); err != nil {
			continue
		}
		out = append(out, i)
	}
	return out
}

// Restore gives the batch the latest forecast published for series not in
// memory (keyed by series key; the forecast log's row, as Cold's snapshot
// follows it in the series' order). Scoring such a series then gives the
// forecast and reason the scorer would have given had it kept the series
// in memory: the reason compares with that forecast (its daily means, its
// "level" component, its global model version), and a state the scorer
// would have advanced with the snapshot's new closed days is rebuilt
// through the day before that forecast's start and advanced the same way.
// Only the daily means and start day, the components and the global
// part's version of each Result are read.
func (b *Batch) Restore(prev map[string]*Result) {
	for key, res := range prev {
		start, err := forecasting.ParseDay(res.Event.GetStartDay())
		if err != nil || len(res.Event.GetDaily()) == 0 {
			continue
		}
		if b.restored == nil {
			b.restored = make(map[string]*restored, len(prev))
		}
		b.restored[key] = &restored{prev: summarise(res.Event, res.Components), lastStart: start}
	}
}

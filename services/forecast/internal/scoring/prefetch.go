package scoring

import (
	"context"

	"github.com/stockcast/stockcast/pkg/topics"
	featurev1 "github.com/stockcast/stockcast/proto/stockcast/feature/v1"
)

// SeriesRef names a series.
type SeriesRef struct{ SKU, Location string }

// HistoriesSource is a HistorySource that also returns many series'
// histories in one call (the feature service's GetHistories): hists[i] is
// what History returns for series[i].
type HistoriesSource interface {
	HistorySource
	Histories(ctx context.Context, series []SeriesRef) (hists [][]DailyDemand, err error)
}

// PrefetchSeries bounds the histories fetched together (one call, and the
// histories a batch holds at once: up to 400 days each).
const PrefetchSeries = 256

// Prefetch tells the batch the snapshots it is about to score, in order.
// When one of them needs its series' history (a series not in memory), the
// histories of the next series that will need theirs, up to
// PrefetchSeries, are fetched with it in one call instead of one call
// each. The forecasts are the same either way.
func (b *Batch) Prefetch(snaps []*featurev1.FeatureSnapshot) {
	if _, ok := b.s.history.(HistoriesSource); ok {
		b.ahead, b.pos = snaps, 0
	}
}

// advance moves past snap if it is the next prefetched one.
func (b *Batch) advance(snap *featurev1.FeatureSnapshot) {
	if b.pos < len(b.ahead) && b.ahead[b.pos] == snap {
		b.pos++
	}
}

// historyOf returns the stored history of the series key (sku, location):
// prefetched, or fetched together with the histories the next snapshots
// will need, or (when prefetched ones are still unused: a series that needs
// its history again in the batch) alone.
func (b *Batch) historyOf(ctx context.Context, key, sku, location string) ([]DailyDemand, error) {
	if h, ok := b.prefetched[key]; ok {
		delete(b.prefetched, key)
		return h, nil
	}
	many, ok := b.s.history.(HistoriesSource)
	if !ok || b.ahead == nil || len(b.prefetched) > 0 {
		return b.s.history.History(ctx, sku, location)
	}
	refs, keys := []SeriesRef{{sku, location}}, []string{key}
	picked := map[string]bool{key: true}
	b.s.mu.Lock()
	for _, snap := range b.ahead[b.pos:] {
		if len(refs) == PrefetchSeries {
			break
		}
		k := snap.GetSeriesKey()
		if picked[k] || b.touched[k] != nil || b.s.cache.items[k] != nil {
			continue // in memory: its state is advanced, not rebuilt
		}
		s, l, isSeries := topics.SplitSeriesKey(k)
		if _, err := validate(snap); err != nil || !isSeries {
			continue
		}
		refs, keys = append(refs, SeriesRef{s, l}), append(keys, k)
		picked[k] = true
	}
	b.s.mu.Unlock()
	hists, err := many.Histories(ctx, refs)
	if err != nil {
		return nil, err
	}
	b.prefetched = make(map[string][]DailyDemand, len(keys)-1)
	for i, k := range keys[1:] {
		b.prefetched[k] = hists[i+1]
	}
	return hists[0], nil
}

package scoring

import (
	"container/list"

	"github.com/stockcast/stockcast/pkg/forecasting"
)

// series is what the service keeps per series between snapshots (the
// most recently scored series; the others are kept compact: coldSeries).
type series struct {
	key   string
	state forecasting.State
	// synced is the last closed day the state has been given (observed or
	// skipped as before the first sale); ok tells whether there is one.
	synced   forecasting.Day
	syncedOK bool
	// prev is what the next forecast's reason reads of the latest one
	// published for the series, lastStart its first day. The whole
	// forecast is kept only for the most recently scored series
	// (Scorer.latest).
	prev      prevForecast
	lastStart forecasting.Day
	// win holds the last closed days for the global model's features;
	// global is its forecast of the current day (nil without a model).
	win    window
	global *globalPart
	// unkept tells that the series' latest forecast is no longer kept
	// whole (latestLRU dropped it): the cache keeps it compact from its
	// next put on. Written and read under the Scorer's lock only, in a
	// word of its own (batches read the other fields without the lock).
	unkept bool
}

// lru is a bounded map of series, evicting the least recently used. The
// series whose latest forecast is kept whole (Config.LatestSeries) are
// kept as they are (hot); the others compact (cold: coldSeries, ~0.55 of
// a series' heap), decoded again when a batch reads them. Every cold
// series was used before every hot one, except one read by a batch that
// did not commit it (it stays cold, first of the cold ones). It is not
// safe for concurrent use: Scorer locks around it.
type lru struct {
	max int
	// hot values are *series, cold ones *coldSeries; front = most
	// recently used
	hot, cold *list.List
	items     map[string]*list.Element
	// keepDecoded keeps every series hot (the memory benchmark's
	// baseline: the cache before cold series)
	keepDecoded bool
	scratch     []byte
}

func newLRU(max int) *lru {
	return &lru{max: max, hot: list.New(), cold: list.New(), items: make(map[string]*list.Element)}
}

// get returns a series and marks it used; a cold one is decoded (a copy:
// the batch's put stores the series it makes from it).
func (c *lru) get(key string) (*series, bool) {
	el, ok := c.items[key]
	if !ok {
		return nil, false
	}
	if s, hot := el.Value.(*series); hot {
		c.hot.MoveToFront(el)
		return s, true
	}
	c.cold.MoveToFront(el)
	return el.Value.(*coldSeries).decode(), true
}

// peek returns a series without marking it used (reads by the API).
func (c *lru) peek(key string) (*series, bool) {
	el, ok := c.items[key]
	if !ok {
		return nil, false
	}
	if s, hot := el.Value.(*series); hot {
		return s, true
	}
	return el.Value.(*coldSeries).decode(), true
}

// put stores s (hot) and calls evicted with the key of each series it
// evicts; it makes cold the least recently used hot series whose latest
// forecast is no longer kept whole.
func (c *lru) put(s *series, evicted func(key string)) {
	if el, ok := c.items[s.key]; ok {
		if _, hot := el.Value.(*series); hot {
			el.Value = s
			c.hot.MoveToFront(el)
			return
		}
		c.cold.Remove(el)
	}
	c.items[s.key] = c.hot.PushFront(s)
	for !c.keepDecoded {
		el := c.hot.Back()
		if el == nil || !el.Value.(*series).unkept {
			break
		}
		c.hot.Remove(el)
		var cs *coldSeries
		cs, c.scratch = encodeCold(el.Value.(*series), c.scratch)
		c.items[cs.key] = c.cold.PushFront(cs)
	}
	for c.hot.Len()+c.cold.Len() > c.max {
		l := c.cold
		if l.Len() == 0 {
			l = c.hot
		}
		oldest := l.Back()
		l.Remove(oldest)
		var key string
		switch v := oldest.Value.(type) {
		case *series:
			key = v.key
		case *coldSeries:
			key = v.key
		}
		delete(c.items, key)
		if evicted != nil {
			evicted(key)
		}
	}
}

func (c *lru) len() int { return c.hot.Len() + c.cold.Len() }

// hotLen returns the number of series kept as they are.
func (c *lru) hotLen() int { return c.hot.Len() }

// prevForecast is what a forecast's reason reads of the series' previous
// one (reason): a few numbers instead of the whole forecast.
type prevForecast struct {
	ok       bool // there is a previous forecast
	hasLevel bool // it has a "level" component (level)
	// total is the sum of its daily means, in day order
	total float64
	// level is its "level" component
	level float64
	// globalVersion is its global part's model version ("" without one)
	globalVersion string
}

// latestEntry is a series' latest forecast kept whole, with the series
// state it was made from (owner): it is the latest only while owner is the
// series' state in the cache.
type latestEntry struct {
	key   string
	owner *series
	res   *Result
}

// latestLRU keeps the latest forecasts of the most recently scored series
// whole (Config.LatestSeries). Not safe for concurrent use: Scorer locks
// around it.
type latestLRU struct {
	max   int
	order *list.List // front = most recently used; values are *latestEntry
	items map[string]*list.Element
}

func newLatestLRU(max int) *latestLRU {
	return &latestLRU{max: max, order: list.New(), items: make(map[string]*list.Element)}
}

// of returns the latest forecast of the series whose cached state is owner,
// without marking it used; nil if it is not kept.
func (c *latestLRU) of(key string, owner *series) *Result {
	el, ok := c.items[key]
	if !ok || owner == nil {
		return nil
	}
	if e := el.Value.(*latestEntry); e.owner == owner {
		return e.res
	}
	return nil
}

func (c *latestLRU) put(key string, owner *series, res *Result) {
	if el, ok := c.items[key]; ok {
		e := el.Value.(*latestEntry)
		e.owner, e.res = owner, res
		c.order.MoveToFront(el)
		return
	}
	c.items[key] = c.order.PushFront(&latestEntry{key: key, owner: owner, res: res})
	for c.order.Len() > c.max {
		c.remove(c.order.Back().Value.(*latestEntry).key)
	}
}

// remove drops the series' latest forecast; its state may be kept compact
// from now on (series.unkept).
func (c *latestLRU) remove(key string) {
	if el, ok := c.items[key]; ok {
		if o := el.Value.(*latestEntry).owner; o != nil {
			o.unkept = true
		}
		c.order.Remove(el)
		delete(c.items, key)
	}
}

func (c *latestLRU) len() int { return c.order.Len() }

package scoring

import (
	"container/list"

	"github.com/stockcast/stockcast/pkg/forecasting"
)

// series is what the service keeps per series between snapshots.
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
}

// lru is a bounded map of series, evicting the least recently used. It is
// not safe for concurrent use: Scorer locks around it.
type lru struct {
	max   int
	order *list.List // front = most recently used; values are *series
	items map[string]*list.Element
}

func newLRU(max int) *lru {
	return &lru{max: max, order: list.New(), items: make(map[string]*list.Element)}
}

func (c *lru) get(key string) (*series, bool) {
	el, ok := c.items[key]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(el)
	return el.Value.(*series), true
}

// peek returns a series without marking it used (reads by the API).
func (c *lru) peek(key string) (*series, bool) {
	el, ok := c.items[key]
	if !ok {
		return nil, false
	}
	return el.Value.(*series), true
}

// put stores s and calls evicted with the key of each series it evicts.
func (c *lru) put(s *series, evicted func(key string)) {
	if el, ok := c.items[s.key]; ok {
		el.Value = s
		c.order.MoveToFront(el)
		return
	}
	c.items[s.key] = c.order.PushFront(s)
	for c.order.Len() > c.max {
		oldest := c.order.Back()
		c.order.Remove(oldest)
		key := oldest.Value.(*series).key
		delete(c.items, key)
		if evicted != nil {
			evicted(key)
		}
	}
}

func (c *lru) len() int { return c.order.Len() }

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

func (c *latestLRU) remove(key string) {
	if el, ok := c.items[key]; ok {
		c.order.Remove(el)
		delete(c.items, key)
	}
}

func (c *latestLRU) len() int { return c.order.Len() }

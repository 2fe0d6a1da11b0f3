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
	// last is the latest forecast published for the series, lastStart
	// its first day.
	last      *Result
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

func (c *lru) put(s *series) {
	if el, ok := c.items[s.key]; ok {
		el.Value = s
		c.order.MoveToFront(el)
		return
	}
	c.items[s.key] = c.order.PushFront(s)
	for c.order.Len() > c.max {
		oldest := c.order.Back()
		c.order.Remove(oldest)
		delete(c.items, oldest.Value.(*series).key)
	}
}

func (c *lru) len() int { return c.order.Len() }

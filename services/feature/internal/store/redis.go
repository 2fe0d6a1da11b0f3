// Package store keeps the online features of every series in Redis and
// rebuilds them from the ClickHouse order history. Each event is applied by
// one Lua script (series.lua, item.lua) that checks and sets the event's
// dedup marker and changes the series hash atomically; a batch of events is
// one pipeline.
package store

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stockcast/stockcast/pkg/recovery"
	"github.com/stockcast/stockcast/services/feature/internal/features"
)

var (
	//go:embed series.lua
	seriesLua string
	//go:embed item.lua
	itemLua string
)

// Config of the Redis feature store.
type Config struct {
	// DedupTTL is how long an applied event's marker and a series' undo log
	// (its offset watermark) are kept after its last batch: a redelivery
	// later than that would be applied again.
	DedupTTL time.Duration
	// Markers makes the live path write a marker per applied event too
	// (SeenKey): needed with -kafka.transactions=false, where ingest may
	// publish an event twice at other offsets; with transactions the
	// per-series offset watermark (the undo log) is enough. Markers are
	// read either way (a rebuild writes them). Set from the Kafka config.
	Markers bool
}

// RegisterFlags registers the store flags under prefix (e.g. "feature.").
func (c *Config) RegisterFlags(fs *flag.FlagSet, prefix string) {
	fs.DurationVar(&c.DedupTTL, prefix+"dedup-ttl", 168*time.Hour, "how long applied event ids are remembered for de-duplication")
}

// Validate checks the config.
func (c *Config) Validate() error {
	if c.DedupTTL < time.Second {
		return fmt.Errorf("feature.dedup-ttl %s: must be at least 1s", c.DedupTTL)
	}
	return nil
}

// Redis key layout (docs/design.md): the {...} hash tag keeps a series'
// keys in one cluster slot.

// SeriesKey is the feature hash of a series ("sku|location").
func SeriesKey(series string) string { return "stockcast:f:{" + series + "}" }

// SeenKey marks an event as applied to a series (or to an item, by SKU):
// written by a rebuild, and live only with Config.Markers.
func SeenKey(series, eventID string) string { return SeriesKey(series) + ":seen:" + eventID }

// ItemKey is the attribute hash of a SKU.
func ItemKey(sku string) string { return "stockcast:item:{" + sku + "}" }

// UndoKey is the undo log of a series: what each event applied since the
// batch start of its partition changed (series.lua).
func UndoKey(series string) string { return SeriesKey(series) + ":undo" }

// ItemUndoKey is the undo log of a SKU's attributes (item.lua).
func ItemUndoKey(sku string) string { return ItemKey(sku) + ":undo" }

// Redis is the feature store.
type Redis struct {
	rdb    redis.Cmdable
	cfg    Config
	series *redis.Script
	item   *redis.Script
	// The scripts write only while the guard key exists (and, with a
	// token, holds it): the state sentinel live, the rebuild lock in a
	// rebuild (pkg/recovery).
	guardKey, guardToken string
	pipelineSize         int // changes per pipeline; 0: maxPipeline
}

// Service names the feature service's state in pkg/recovery.
const Service = "feature"

// NewRedis returns a store on rdb.
func NewRedis(rdb redis.Cmdable, cfg Config) *Redis {
	return &Redis{rdb: rdb, cfg: cfg, series: redis.NewScript(seriesLua), item: redis.NewScript(itemLua),
		guardKey: recovery.Key(Service)}
}

// Rebuilding returns the store as a rebuild holding the recovery lock with
// token writes it.
func (s *Redis) Rebuilding(token string) *Redis {
	c := *s
	c.guardKey, c.guardToken = recovery.LockKey(Service), token
	return &c
}

// Apply applies changes in order, each at most once, and returns the state
// after each. The whole batch is one pipeline; if Redis lost its scripts
// (NOSCRIPT after a restart or SCRIPT FLUSH) they are loaded and the batch
// goes on from the first change that was not run. An error means some
// changes may have been applied: the caller retries the batch. Changes
// with a Pos are undone and applied again when they are delivered again
// from their batch start (the undo log), so every change gets the state of
// its first application; a change without one (or older than its
// partition's batch start) that was applied before changes nothing and
// gets the current state.
func (s *Redis) Apply(ctx context.Context, changes []features.Change) ([]features.Outcome, error) {
	results := make([]features.Outcome, len(changes))
	if len(changes) == 0 {
		return results, nil
	}
	size := s.pipelineSize
	if size <= 0 {
		size = maxPipeline
	}
	done := 0
	skuSeen := map[skuPart]bool{}
	for reloads := 0; done < len(changes); {
		end := min(done+size, len(changes))
		n, err := s.applyPipeline(ctx, changes[done:end], results[done:end], skuSeen)
		done += n
		if err == nil {
			continue
		}
		if !isNoScript(err) || reloads == 2 {
			return nil, err
		}
		reloads++
		// Go on as a new batch from the first change not run: its SKUs'
		// item events are rolled back again (they may not have been).
		skuSeen = map[skuPart]bool{}
		if err := s.loadScripts(ctx); err != nil {
			return nil, err
		}
	}
	return results, nil
}

// maxPipeline bounds the changes sent in one pipeline. A whole poll
// (10,000 events) in one round trip made Redis answer after the client's
// read timeout on a starved machine, and the retry sent the same 10,000
// again: the batch never went through. Redis runs a pipeline's commands in
// order either way, so the split changes no result.
const maxPipeline = 1000

// LoadScripts loads the Lua scripts into Redis, so the first batch does not
// run into NOSCRIPT; it is also a cheap check that Redis is reachable.
func (s *Redis) LoadScripts(ctx context.Context) error { return s.loadScripts(ctx) }

func (s *Redis) loadScripts(ctx context.Context) error {
	for _, sc := range []*redis.Script{s.series, s.item} {
		if err := sc.Load(ctx, s.rdb).Err(); err != nil {
			return fmt.Errorf("load feature scripts: %w", err)
		}
	}
	return nil
}

func isNoScript(err error) bool { return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") }

// applyPipeline runs changes in one pipeline and fills results; it returns
// how many changes completed before the first error. skuSeen holds the
// SKUs (of a partition) whose item events the batch has rolled back.
func (s *Redis) applyPipeline(ctx context.Context, changes []features.Change, results []features.Outcome, skuSeen map[skuPart]bool) (int, error) {
	ttl := strconv.FormatInt(int64(s.cfg.DedupTTL/time.Second), 10)
	markers := ""
	if s.cfg.Markers {
		markers = "1"
	}
	type cmds struct {
		script, item, itemUndo *redis.Cmd
		attrs                  *redis.SliceCmd
	}
	sent := make([]cmds, len(changes))
	logged, err := s.itemLogs(ctx, changes, skuSeen)
	if err != nil {
		return 0, err
	}
	pipe := s.rdb.Pipeline()
	// attrs is the SKU's attributes read in this pipeline since its last
	// item.lua call: series events of the SKU up to its next item change
	// share one HMGET (Redis runs the pipeline in order, and only item.lua
	// writes the item hash).
	attrs := map[string]*redis.SliceCmd{}
	// The first change of a SKU (of a partition) in the batch: before a
	// series event reads the SKU's attributes, the item events it did not
	// see the first time (same partition, offset >= its own) are undone;
	// they come again later in the batch. Only a SKU with an item undo
	// log can have any (itemLogs).
	for i, c := range changes {
		if c.Pos != nil {
			k := skuPart{c.SKU, c.Pos.Partition}
			if !skuSeen[k] && c.Kind != features.KindItem && logged[c.SKU] {
				sent[i].itemUndo = s.item.EvalSha(ctx, pipe, []string{ItemKey(c.SKU), SeenKey(c.SKU, c.EventID), s.guardKey, ItemUndoKey(c.SKU)},
					append([]any{ttl, "", "", "", s.guardToken}, append(posArgs(c, true), "rollback", markers)...)...)
				delete(attrs, c.SKU)
			}
			skuSeen[k] = true
		}
		at := strconv.FormatInt(c.At.UnixMilli(), 10)
		seen := SeenKey(c.SeriesKey(), c.EventID)
		if c.Kind == features.KindItem {
			sent[i].item = s.item.EvalSha(ctx, pipe, []string{ItemKey(c.SKU), seen, s.guardKey, ItemUndoKey(c.SKU)},
				append([]any{ttl, at, c.Item.Category, c.Item.Department, s.guardToken}, append(posArgs(c, true), "", markers)...)...)
			delete(attrs, c.SKU)
			continue
		}
		sent[i].script = s.series.EvalSha(ctx, pipe, []string{SeriesKey(c.SeriesKey()), seen, s.guardKey, UndoKey(c.SeriesKey())},
			append(append(append(seriesArgs(c, ttl, at), s.guardToken), posArgs(c, false)...), markers)...)
		if attrs[c.SKU] == nil {
			attrs[c.SKU] = pipe.HMGet(ctx, ItemKey(c.SKU), "category", "department")
		}
		sent[i].attrs = attrs[c.SKU]
	}
	_, _ = pipe.Exec(ctx) // errors are read per command, in order
	for i, c := range changes {
		var err error
		switch {
		case sent[i].itemUndo != nil && sent[i].itemUndo.Err() != nil:
			err = sent[i].itemUndo.Err()
		case c.Kind == features.KindItem:
			results[i], err = itemResult(sent[i].item)
		default:
			results[i], err = seriesResult(sent[i].script, sent[i].attrs)
		}
		if err != nil {
			if isNoScript(err) {
				return i, err
			}
			return i, fmt.Errorf("apply event %s to %s: %w", c.EventID, c.SeriesKey(), err)
		}
	}
	return len(changes), nil
}

// itemLogs returns which SKUs of the changes that need an item rollback
// (their first series event of a partition in the batch) have an item undo
// log: one pipeline of EXISTS. A SKU without one has no item event to undo,
// so its rollback call (a script call per SKU and batch, as many as the
// series events when every series is a SKU of its own) is left out.
func (s *Redis) itemLogs(ctx context.Context, changes []features.Change, skuSeen map[skuPart]bool) (map[string]bool, error) {
	exists := map[string]*redis.IntCmd{}
	var pipe redis.Pipeliner
	for _, c := range changes {
		if c.Pos == nil || c.Kind == features.KindItem || skuSeen[skuPart{c.SKU, c.Pos.Partition}] || exists[c.SKU] != nil {
			continue
		}
		if pipe == nil {
			pipe = s.rdb.Pipeline()
		}
		exists[c.SKU] = pipe.Exists(ctx, ItemUndoKey(c.SKU))
	}
	logged := make(map[string]bool, len(exists))
	if pipe == nil {
		return logged, nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("read item undo logs: %w", err)
	}
	for sku, cmd := range exists {
		logged[sku] = cmd.Val() == 1
	}
	return logged, nil
}

type skuPart struct {
	sku  string
	part int32
}

var kindArg = map[features.Kind]string{
	features.KindOther:           "other",
	features.KindDemand:          "demand",
	features.KindStockoutStarted: "stockout_started",
	features.KindStockoutEnded:   "stockout_ended",
	features.KindPrice:           "price",
	features.KindPromotion:       "promotion",
}

// Milli converts a quantity to the milli-units the store counts in: exact
// sums, so a cancelled order takes its day back to exactly zero.
func Milli(q float64) int64 { return int64(math.Round(q * 1000)) }

func seriesArgs(c features.Change, ttl, at string) []any {
	var number, promoFrom, promoTo string
	switch c.Kind {
	case features.KindDemand:
		number = strconv.FormatInt(Milli(c.Quantity), 10)
	case features.KindPrice:
		number = strconv.FormatFloat(c.Price, 'g', -1, 64)
	case features.KindPromotion:
		promoFrom = strconv.FormatInt(c.PromotionStart.UnixMilli(), 10)
		promoTo = strconv.FormatInt(c.PromotionEnd.UnixMilli(), 10)
	}
	return []any{ttl, kindArg[c.Kind], int64(c.Day), at, c.EventID, c.At.UTC().Hour(), number, c.PromotionID, promoFrom, promoTo}
}

// posArgs are the undo-log arguments of the scripts: offset, partition,
// batch start (empty strings without a position), and the event id for
// item.lua.
func posArgs(c features.Change, item bool) []any {
	args := []any{"", "", ""}
	if c.Pos != nil {
		args = []any{c.Pos.Offset, c.Pos.Partition, c.Pos.Start}
	}
	if item {
		args = append(args, c.EventID)
	}
	return args
}

func itemResult(cmd *redis.Cmd) (features.Outcome, error) {
	reply, err := cmd.Slice()
	if err != nil {
		return features.Outcome{}, err
	}
	if len(reply) != 4 {
		return features.Outcome{}, fmt.Errorf("item script returned %d values, want 4", len(reply))
	}
	applied, _ := reply[0].(int64)
	cat, _ := reply[1].(string)
	dep, _ := reply[2].(string)
	rolled, _ := reply[3].(int64)
	return features.Outcome{Applied: applied == 1, Item: features.Item{Category: cat, Department: dep}, RolledBack: int(rolled)}, nil
}

func seriesResult(cmd *redis.Cmd, attrs *redis.SliceCmd) (features.Outcome, error) {
	reply, err := cmd.Slice()
	if err != nil {
		return features.Outcome{}, err
	}
	if len(reply) != 4 {
		return features.Outcome{}, fmt.Errorf("series script returned %d values, want 4", len(reply))
	}
	applied, _ := reply[0].(int64)
	rolled, _ := reply[3].(int64)
	note, _ := reply[1].(string)
	flat, _ := reply[2].([]any)
	hash := make(map[string]string, len(flat)/2)
	for i := 0; i+1 < len(flat); i += 2 {
		k, _ := flat[i].(string)
		v, _ := flat[i+1].(string)
		hash[k] = v
	}
	st, err := DecodeState(hash)
	if err != nil {
		return features.Outcome{}, err
	}
	item, err := decodeItem(attrs)
	if err != nil {
		return features.Outcome{}, err
	}
	return features.Outcome{Applied: applied == 1, Note: note, State: st, Item: item, RolledBack: int(rolled)}, nil
}

func decodeItem(cmd *redis.SliceCmd) (features.Item, error) {
	vals, err := cmd.Result()
	if err != nil {
		return features.Item{}, fmt.Errorf("read item attributes: %w", err)
	}
	var it features.Item
	if len(vals) == 2 {
		it.Category, _ = vals[0].(string)
		it.Department, _ = vals[1].(string)
	}
	return it, nil
}

// Load reads the state of a series. found is false if Redis has none.
func (s *Redis) Load(ctx context.Context, sku, location string) (st features.State, item features.Item, found bool, err error) {
	series := features.Change{SKU: sku, Location: location}.SeriesKey()
	pipe := s.rdb.Pipeline()
	hash := pipe.HGetAll(ctx, SeriesKey(series))
	attrs := pipe.HMGet(ctx, ItemKey(sku), "category", "department")
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return st, item, false, fmt.Errorf("load features of %s: %w", series, err)
	}
	if len(hash.Val()) == 0 {
		return st, item, false, nil
	}
	if st, err = DecodeState(hash.Val()); err != nil {
		return st, item, false, fmt.Errorf("load features of %s: %w", series, err)
	}
	if item, err = decodeItem(attrs); err != nil {
		return st, item, false, err
	}
	return st, item, true, nil
}

package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/stockcast/stockcast/services/feature/internal/features"
)

// LoadStates reads the states of many series ("sku|location") in one
// pipeline: what Load returns for each, without the item attributes.
// found[i] is false if Redis has no state of series[i].
func (s *Redis) LoadStates(ctx context.Context, series []string) (states []features.State, found []bool, err error) {
	states, found = make([]features.State, len(series)), make([]bool, len(series))
	if len(series) == 0 {
		return states, found, nil
	}
	pipe := s.rdb.Pipeline()
	hashes := make([]*redis.MapStringStringCmd, len(series))
	for i, key := range series {
		hashes[i] = pipe.HGetAll(ctx, SeriesKey(key))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, nil, fmt.Errorf("load features of %d series: %w", len(series), err)
	}
	for i, h := range hashes {
		if len(h.Val()) == 0 {
			continue
		}
		if states[i], err = DecodeState(h.Val()); err != nil {
			return nil, nil, fmt.Errorf("load features of %s: %w", series[i], err)
		}
		found[i] = true
	}
	return states, found, nil
}

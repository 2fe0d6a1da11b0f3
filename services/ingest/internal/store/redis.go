// Package store holds ingest's adapters: the Redis de-duplication memory
// and the ClickHouse history.
package store

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// SeenKey is the Redis key remembering an accepted event id. The id is the
// hash tag, so each key lives in its own cluster slot by the id.
func SeenKey(eventID string) string { return "stockcast:ingest:seen:{" + eventID + "}" }

// Seen remembers the content hash of every accepted event id for a while.
type Seen struct {
	rdb redis.Cmdable
	ttl time.Duration
}

// NewSeen returns a Seen whose marks expire after ttl.
func NewSeen(rdb redis.Cmdable, ttl time.Duration) *Seen { return &Seen{rdb: rdb, ttl: ttl} }

// Lookup returns the remembered content hash of each id that has one.
func (s *Seen) Lookup(ctx context.Context, ids []string) (map[string]string, error) {
	if len(ids) == 0 {
		return map[string]string{}, nil
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = SeenKey(id)
	}
	vals, err := s.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, fmt.Errorf("look up %d seen event ids: %w", len(ids), err)
	}
	found := make(map[string]string, len(vals))
	for i, v := range vals {
		if h, ok := v.(string); ok {
			found[ids[i]] = h
		}
	}
	return found, nil
}

// Remember stores the content hash of each id, in one round trip.
func (s *Seen) Remember(ctx context.Context, hashes map[string]string) error {
	if len(hashes) == 0 {
		return nil
	}
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for id, h := range hashes {
			p.Set(ctx, SeenKey(id), h, s.ttl)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("remember %d event ids: %w", len(hashes), err)
	}
	return nil
}

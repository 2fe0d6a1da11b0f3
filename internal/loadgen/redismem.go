package loadgen

import (
	"context"
	"fmt"
	"regexp"
	"sort"

	"github.com/redis/go-redis/v9"
)

// KeyClass is the Redis memory of one kind of key: every key whose name
// normalises to Class (keyClass), measured exactly.
type KeyClass struct {
	Class string
	Keys  int64
	Bytes int64 // sum of MEMORY USAGE <key> SAMPLES 0
}

var (
	hashTag    = regexp.MustCompile(`\{[^}]*\}`)
	markerTail = regexp.MustCompile(`:seen:.*$`)
	numberPart = regexp.MustCompile(`:[0-9]+`)
)

// keyClass names a key's kind: the series in its hash tag becomes {s}, a
// marker's event id *, numbers (buckets, shards) N. For example
// stockcast:r:{A|x}:seen:e1 -> stockcast:r:{s}:seen:*,
// stockcast:ingest:seen:12:345 -> stockcast:ingest:seen:*.
func keyClass(key string) string {
	c := hashTag.ReplaceAllString(key, "{s}")
	c = markerTail.ReplaceAllString(c, ":seen:*")
	return numberPart.ReplaceAllString(c, ":N")
}

// redisKeyClasses scans every key (SCAN, so Redis is never blocked) and
// sums MEMORY USAGE with SAMPLES 0 (every element of a hash, list or zset
// counted, not an estimate from 5) by key class, largest first.
func redisKeyClasses(ctx context.Context, rdb *redis.Client) ([]KeyClass, error) {
	by := map[string]*KeyClass{}
	var cursor uint64
	for {
		keys, next, err := rdb.Scan(ctx, cursor, "*", 1000).Result()
		if err != nil {
			return nil, fmt.Errorf("scan redis keys: %w", err)
		}
		pipe := rdb.Pipeline()
		cmds := make([]*redis.IntCmd, len(keys))
		for i, k := range keys {
			cmds[i] = pipe.MemoryUsage(ctx, k, 0)
		}
		if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
			return nil, fmt.Errorf("memory usage of %d keys: %w", len(keys), err)
		}
		for i, k := range keys {
			n, err := cmds[i].Result()
			if err != nil {
				continue // expired between SCAN and MEMORY USAGE
			}
			c := keyClass(k)
			kc := by[c]
			if kc == nil {
				kc = &KeyClass{Class: c}
				by[c] = kc
			}
			kc.Keys++
			kc.Bytes += n
		}
		if next == 0 {
			break
		}
		cursor = next
	}
	out := make([]KeyClass, 0, len(by))
	for _, kc := range by {
		out = append(out, *kc)
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Bytes > out[j].Bytes || (out[i].Bytes == out[j].Bytes && out[i].Class < out[j].Class)
	})
	return out, nil
}

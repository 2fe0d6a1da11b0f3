// Package store holds ingest's adapters: the Redis de-duplication memory
// and the ClickHouse history.
package store

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stockcast/stockcast/services/ingest/internal/ingesting"
)

// The seen store is compact: an accepted event id is a fixed-size entry in
// a small hash, not a key of its own. SHA-256 of the id gives the shard
// (bytes 0-3) and an 8-byte fingerprint (bytes 4-11), the hash field; the
// value is the first 8 bytes of the event's content hash and, when known,
// the 4-byte tag of the record's position (ingesting.Mark). Each hash holds
// the ids remembered in one time bucket (a quarter of the TTL) of one
// shard and expires as a whole, TTL after its bucket ends, so an id is
// remembered for at least the TTL and at most 1.25 x the TTL. Small hashes
// stay listpack-encoded in Redis (up to hash-max-listpack-entries, 128 by
// default): ~20 bytes per id plus the key's share (README.md, "Redis").

// SeenBuckets is the number of time buckets per TTL.
const SeenBuckets = 4

// DefaultSeenShards is the default number of hashes per time bucket.
const DefaultSeenShards = 4096

// SeenKey is the Redis hash of the ids remembered in a time bucket (the
// bucket's start in seconds since the epoch divided by its width) and
// shard.
func SeenKey(bucket int64, shard uint32) string {
	return "stockcast:ingest:seen:" + strconv.FormatInt(bucket, 10) + ":" + strconv.FormatUint(uint64(shard), 10)
}

// Seen remembers the content hash of every accepted event id for a while.
type Seen struct {
	rdb    redis.Cmdable
	ttl    time.Duration
	width  int64 // bucket width, seconds
	shards uint32
	now    func() time.Time
}

// NewSeen returns a Seen whose marks live at least ttl, with
// DefaultSeenShards hashes per time bucket.
func NewSeen(rdb redis.Cmdable, ttl time.Duration) *Seen {
	return NewSeenSharded(rdb, ttl, DefaultSeenShards)
}

// NewSeenSharded returns a Seen with the given number of hashes per time
// bucket: about the ids remembered in a quarter of the TTL divided by 100
// keeps every hash listpack-encoded.
func NewSeenSharded(rdb redis.Cmdable, ttl time.Duration, shards int) *Seen {
	width := int64(ttl/time.Second) / SeenBuckets
	if width < 1 {
		width = 1
	}
	if shards < 1 {
		shards = 1
	}
	return &Seen{rdb: rdb, ttl: ttl, width: width, shards: uint32(shards), now: time.Now}
}

// fingerprint is where an id is remembered: its shard and hash field.
func (s *Seen) fingerprint(id string) (uint32, string) {
	d := sha256.Sum256([]byte(id))
	return binary.BigEndian.Uint32(d[0:4]) % s.shards, string(d[4:12])
}

// packHash is the stored value of a content hash: its first 8 bytes (the
// hex digits decoded; a hash that is not hex is kept as its first 8 bytes).
func packHash(h string) string {
	if len(h) >= 16 {
		if b, err := hex.DecodeString(h[:16]); err == nil {
			return string(b)
		}
	}
	if len(h) > 8 {
		return h[:8]
	}
	return h
}

// packMark is the stored value of a mark: the packed hash (8 bytes when it
// is hex) and, when the position is known, its tag (4 bytes, big endian).
func packMark(m ingesting.Mark) string {
	v := packHash(m.Hash)
	if m.Pos == 0 || len(v) != 8 {
		return v
	}
	return v + string(binary.BigEndian.AppendUint32(nil, m.Pos))
}

// unpackMark is what Lookup returns for a stored value: the hex of its
// hash part, a prefix of the content hash remembered (ingesting compares
// by prefix), and the position's tag.
func unpackMark(v string) ingesting.Mark {
	if len(v) == 12 {
		return ingesting.Mark{Hash: hex.EncodeToString([]byte(v[:8])), Pos: binary.BigEndian.Uint32([]byte(v[8:]))}
	}
	return ingesting.Mark{Hash: hex.EncodeToString([]byte(v))}
}

// buckets are the time buckets an id remembered TTL ago or later can be in,
// newest first.
func (s *Seen) buckets() []int64 {
	now := s.now().Unix()
	first, last := (now-int64(s.ttl/time.Second))/s.width, now/s.width
	out := make([]int64, 0, last-first+1)
	for b := last; b >= first; b-- {
		out = append(out, b)
	}
	return out
}

// Lookup returns, for each id that was remembered, the hex of the first 8
// bytes of its content hash (a prefix of the hash Remember got) and its
// position's tag.
func (s *Seen) Lookup(ctx context.Context, ids []string) (map[string]ingesting.Mark, error) {
	found := map[string]ingesting.Mark{}
	if len(ids) == 0 {
		return found, nil
	}
	type slot struct {
		ids    []string
		fields []string
	}
	byShard := map[uint32]*slot{}
	for _, id := range ids {
		shard, field := s.fingerprint(id)
		sl := byShard[shard]
		if sl == nil {
			sl = &slot{}
			byShard[shard] = sl
		}
		sl.ids = append(sl.ids, id)
		sl.fields = append(sl.fields, field)
	}
	type sent struct {
		sl  *slot
		cmd *redis.SliceCmd
	}
	var cmds []sent
	pipe := s.rdb.Pipeline()
	for _, b := range s.buckets() {
		for shard, sl := range byShard {
			cmds = append(cmds, sent{sl, pipe.HMGet(ctx, SeenKey(b, shard), sl.fields...)})
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("look up %d seen event ids: %w", len(ids), err)
	}
	for _, c := range cmds { // newest bucket first: its value wins
		for i, v := range c.cmd.Val() {
			if h, ok := v.(string); ok {
				if _, dup := found[c.sl.ids[i]]; !dup {
					found[c.sl.ids[i]] = unpackMark(h)
				}
			}
		}
	}
	return found, nil
}

// Remember stores the mark of each id in the current time bucket, in one
// round trip.
func (s *Seen) Remember(ctx context.Context, marks map[string]ingesting.Mark) error {
	if len(marks) == 0 {
		return nil
	}
	bucket := s.now().Unix() / s.width
	expireAt := time.Unix((bucket+1)*s.width+int64(s.ttl/time.Second), 0)
	byShard := map[uint32][]any{}
	for id, m := range marks {
		shard, field := s.fingerprint(id)
		byShard[shard] = append(byShard[shard], field, packMark(m))
	}
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for shard, pairs := range byShard {
			key := SeenKey(bucket, shard)
			p.HSet(ctx, key, pairs...)
			p.ExpireAt(ctx, key, expireAt)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("remember %d event ids: %w", len(marks), err)
	}
	return nil
}

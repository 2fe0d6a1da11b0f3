package loadgen

import (
	"context"
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/stockcast/stockcast/pkg/testenv"
)

func TestKeyClass(t *testing.T) {
	for key, want := range map[string]string{
		"stockcast:f:{A|x}":               "stockcast:f:{s}",
		"stockcast:f:{A:1|x}:undo":        "stockcast:f:{s}:undo",
		"stockcast:r:{A|x}:seen:order-17": "stockcast:r:{s}:seen:*",
		"stockcast:r:{A|x}:applied":       "stockcast:r:{s}:applied",
		"stockcast:ingest:seen:12:345":    "stockcast:ingest:seen:*",
		"stockcast:state:feature":         "stockcast:state:feature",
		"stockcast:alloc:2026:7":          "stockcast:alloc:N:N",
	} {
		if got := keyClass(key); got != want {
			t.Errorf("keyClass(%q) = %q, want %q", key, got, want)
		}
	}
}

// TestRedisKeyClasses: every key is counted once, in its class, with the
// exact MEMORY USAGE (SAMPLES 0: a 300-field hash's every field).
func TestRedisKeyClasses(t *testing.T) {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: testenv.Redis(t)})
	t.Cleanup(func() { _ = rdb.Close() })
	want := map[string]int64{}
	add := func(key string, fields int) {
		t.Helper()
		for i := range fields {
			if err := rdb.HSet(ctx, key, fmt.Sprintf("f%d", i), fmt.Sprintf("value-%d-%0*d", i, i%50, 0)).Err(); err != nil {
				t.Fatal(err)
			}
		}
		n, err := rdb.MemoryUsage(ctx, key, 0).Result()
		if err != nil {
			t.Fatal(err)
		}
		want[keyClass(key)] += n
	}
	for s := range 1500 { // more than one SCAN page
		add(fmt.Sprintf("stockcast:r:{S%d|x}", s), 3)
		if s%10 == 0 {
			add(fmt.Sprintf("stockcast:f:{S%d|x}", s), 300) // hashtable encoded
		}
	}
	add("stockcast:state:feature", 1)
	got, err := redisKeyClasses(ctx, rdb)
	if err != nil {
		t.Fatal(err)
	}
	wantKeys := map[string]int64{"stockcast:r:{s}": 1500, "stockcast:f:{s}": 150, "stockcast:state:feature": 1}
	if len(got) != len(want) {
		t.Fatalf("classes %+v, want %v", got, want)
	}
	for i, kc := range got {
		if kc.Bytes != want[kc.Class] || kc.Keys != wantKeys[kc.Class] {
			t.Errorf("class %s: %d keys %d bytes, want %d keys %d bytes", kc.Class, kc.Keys, kc.Bytes, wantKeys[kc.Class], want[kc.Class])
		}
		if i > 0 && got[i-1].Bytes < kc.Bytes {
			t.Errorf("not largest first: %+v", got)
		}
	}
}

package store

import (
	"context"
	"os"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/stockcast/stockcast/pkg/recovery"
	"github.com/stockcast/stockcast/pkg/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// startRedis returns a client of a redis-server of the test's own, with
// the feature state marked complete (an empty store, as after a first start).
func startRedis(t *testing.T) *redis.Client {
	rdb := redis.NewClient(&redis.Options{Addr: testenv.Redis(t)})
	t.Cleanup(func() { rdb.Close() })
	markComplete(t, rdb)
	return rdb
}

// markComplete sets the state sentinel the scripts require (pkg/recovery).
func markComplete(t testing.TB, rdb redis.Cmdable) {
	t.Helper()
	if err := recovery.NewGuard(rdb, Service).Set(context.Background(), "test"); err != nil {
		t.Fatal(err)
	}
}

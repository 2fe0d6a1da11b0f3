package consumer

import (
	"context"
	"os"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/stockcast/stockcast/pkg/recovery"
	"github.com/stockcast/stockcast/pkg/testenv"
	"github.com/stockcast/stockcast/services/feature/internal/store"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// startRedis returns a client of a redis-server of the test's own.
func startRedis(t *testing.T) *redis.Client {
	rdb := redis.NewClient(&redis.Options{Addr: testenv.Redis(t)})
	t.Cleanup(func() { rdb.Close() })
	// An empty store with the state marked complete, as after a first start.
	if err := recovery.NewGuard(rdb, store.Service).Set(context.Background(), "test"); err != nil {
		t.Fatal(err)
	}
	return rdb
}

package store

import (
	"os"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/stockcast/stockcast/pkg/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// startRedis returns a client of a redis-server of the test's own.
func startRedis(t *testing.T) *redis.Client {
	rdb := redis.NewClient(&redis.Options{Addr: testenv.Redis(t)})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// Package recovery notices that Redis lost a service's state (a restart
// without persistence, FLUSHALL, a failover to an empty replica) and gets it
// rebuilt before the service applies anything again.
//
// A service's state is complete while its sentinel key
// stockcast:state:<service> exists; it holds the generation id of the
// rebuild (or start) that made it complete. Every per-event Lua script of
// the service reads the sentinel (its "guard") and refuses to write when it
// is missing, with an error starting with "STATELOST": after a loss nothing
// is written into the empty Redis, there is no window between a check and a
// write. The consumer then does not commit; Handler waits for the
// Recoverer, which rebuilds the state under a lock (one replica at a time)
// and sets the sentinel again. A rebuild writes with the lock's key as its
// guard and the lock's token as the value the guard must hold, so a
// rebuilder that lost its lock (or a Redis that lost everything again
// meanwhile) cannot write either.
//
// The keys live outside the services' {...} hash tags: they are for a
// single Redis (or a primary with replicas), not for Redis Cluster, where a
// script may only touch keys of one slot.
package recovery

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// LostPrefix starts the error a guarded script returns when the state is
// not complete.
const LostPrefix = "STATELOST"

// Key is the sentinel of a service's state: present (holding the generation
// id) while the state in Redis is complete.
func Key(service string) string { return "stockcast:state:" + service }

// LockKey is held (with a TTL, renewed) by the replica that rebuilds.
func LockKey(service string) string { return Key(service) + ":lock" }

// pendingKey is set, without TTL, when a rebuild starts and deleted when it
// completes: a Redis holding a service's keys but neither the sentinel nor
// this key was written by a version without sentinels (adopted as it is),
// while one with it holds a half-done rebuild (rebuilt again).
func pendingKey(service string) string { return Key(service) + ":rebuilding" }

// IsLost reports whether err is a guarded script's refusal.
func IsLost(err error) bool { return err != nil && strings.Contains(err.Error(), LostPrefix) }

// ErrLost is returned by Handler when the state was lost while it applied a
// batch (the batch is not committed; it is handled again after the
// recovery).
var ErrLost = errors.New(LostPrefix + ": redis lost the service state")

// Guard reads and changes a service's sentinel and lock.
type Guard struct {
	rdb     redis.Cmdable
	service string
}

// NewGuard returns the guard of service's state.
func NewGuard(rdb redis.Cmdable, service string) *Guard { return &Guard{rdb: rdb, service: service} }

// Key is the sentinel key: the guard of the live scripts, with token "".
func (g *Guard) Key() string { return Key(g.service) }

// LockKey is the guard of a rebuild's scripts, with the lock's token.
func (g *Guard) LockKey() string { return LockKey(g.service) }

// Generation returns the generation id of the complete state, "" if the
// state is not complete.
func (g *Guard) Generation(ctx context.Context) (string, error) {
	gen, err := g.rdb.Get(ctx, g.Key()).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read state sentinel %s: %w", g.Key(), err)
	}
	return gen, nil
}

var acquireScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[3]) == 1 then return {2, 0} end
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {0, 0} end
local pending = redis.call('EXISTS', KEYS[2])
redis.call('SET', KEYS[2], ARGV[1])
return {1, pending}`)

// Lock outcomes.
type lockResult int

const (
	lockBusy     lockResult = iota // another replica rebuilds
	lockTaken                      // ours
	lockComplete                   // the state is complete: nothing to do
)

// Acquire takes the rebuild lock for ttl unless it is held or the state is
// complete. pending reports a rebuild that started and did not complete.
func (g *Guard) acquire(ctx context.Context, token string, ttl time.Duration) (res lockResult, pending bool, err error) {
	v, err := acquireScript.Run(ctx, g.rdb, []string{g.LockKey(), pendingKey(g.service), g.Key()},
		token, ttl.Milliseconds()).Int64Slice()
	if err != nil {
		return lockBusy, false, fmt.Errorf("take rebuild lock %s: %w", g.LockKey(), err)
	}
	switch v[0] {
	case 1:
		return lockTaken, v[1] == 1, nil
	case 2:
		return lockComplete, false, nil
	}
	return lockBusy, false, nil
}

var renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`)

// renew extends the lock; false if it is no longer ours.
func (g *Guard) renew(ctx context.Context, token string, ttl time.Duration) (bool, error) {
	n, err := renewScript.Run(ctx, g.rdb, []string{g.LockKey()}, token, ttl.Milliseconds()).Int64()
	if err != nil {
		return false, fmt.Errorf("renew rebuild lock %s: %w", g.LockKey(), err)
	}
	return n == 1, nil
}

var completeScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[3], ARGV[2])
redis.call('DEL', KEYS[1], KEYS[2])
return 1`)

// complete sets the sentinel to generation and frees the lock, if the lock
// is still ours (else Redis lost it, or it expired: the rebuild is void).
func (g *Guard) complete(ctx context.Context, token, generation string) (bool, error) {
	n, err := completeScript.Run(ctx, g.rdb, []string{g.LockKey(), pendingKey(g.service), g.Key()}, token, generation).Int64()
	if err != nil {
		return false, fmt.Errorf("mark state %s complete: %w", g.Key(), err)
	}
	return n == 1, nil
}

var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

// release frees the lock after a failed rebuild (the pending marker stays).
func (g *Guard) release(ctx context.Context, token string) error {
	if err := releaseScript.Run(ctx, g.rdb, []string{g.LockKey()}, token).Err(); err != nil {
		return fmt.Errorf("release rebuild lock %s: %w", g.LockKey(), err)
	}
	return nil
}

// newID is a generation id or lock token: the time, for humans, and 8
// random bytes.
func newID(now time.Time) string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read does not fail
	return fmt.Sprintf("%s-%s", now.UTC().Format("20060102T150405.000Z"), hex.EncodeToString(b[:]))
}

// Set marks the state complete with generation, whatever holds the lock:
// for tests, and for tools that built the state by other means.
func (g *Guard) Set(ctx context.Context, generation string) error {
	if err := g.rdb.Set(ctx, g.Key(), generation, 0).Err(); err != nil {
		return fmt.Errorf("set state sentinel %s: %w", g.Key(), err)
	}
	return nil
}

// ErrBusy means another rebuild holds the lock.
var ErrBusy = errors.New("another rebuild of the redis state is running (its lock is held)")

// Exclusive runs rebuild under the lock, as a Recoverer does, and marks the
// state complete: for the manual rebuild commands. It returns complete =
// true without running rebuild when the state is complete already (the
// caller then writes with the live guard), and ErrBusy when another
// rebuild holds the lock.
func Exclusive(ctx context.Context, g *Guard, ttl time.Duration, rebuild func(ctx context.Context, token string) error) (complete bool, generation string, err error) {
	token := newID(time.Now())
	res, _, err := g.acquire(ctx, token, ttl)
	switch {
	case err != nil:
		return false, "", err
	case res == lockComplete:
		return true, "", nil
	case res == lockBusy:
		return false, "", ErrBusy
	}
	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-rctx.Done():
				return
			case <-t.C:
			}
			if ok, err := g.renew(rctx, token, ttl); err == nil && !ok {
				cancel(fmt.Errorf("rebuild lock %s lost", g.LockKey()))
				return
			}
		}
	}()
	err = rebuild(rctx, token)
	cancel(nil)
	<-done
	if err != nil {
		return false, "", errors.Join(err, g.release(context.WithoutCancel(ctx), token))
	}
	generation = newID(time.Now())
	ok, err := g.complete(ctx, token, generation)
	if err != nil {
		return false, "", err
	}
	if !ok {
		return false, "", fmt.Errorf("rebuild void: the lock %s was lost meanwhile (Redis lost its data again?); run it again", g.LockKey())
	}
	return false, generation, nil
}

package kafkax

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// maxInstanceSlots bounds the instances of one consumer group on one host
// that get a default instance id.
const maxInstanceSlots = 1024

// errIDHeld says that a live process holds the lock of a transactional id.
var errIDHeld = errors.New("held by another live process on this host")

// identity is the transactional id of a consumer instance and the lock
// that keeps it to one live process on this host.
type identity struct {
	id      string
	release func() // unlocks; never nil
}

// transactionalIdentity returns the transactional id of a consumer of
// group: <prefix>-<instance>, prefix Config.TransactionalIDPrefix (default
// the group), instance Config.InstanceID or, by default, <host>-<n>.
//
// The id is stable: a consumer restarted on the same host (kill -9, OOM
// kill, a container restart in the same pod) gets its predecessor's id, so
// its first InitProducerID makes the broker abort the predecessor's open
// transaction at once instead of after -kafka.transaction-timeout. It is
// unique among live instances: n is the lowest slot whose lock file (under
// lockDir) no live process holds, so replicas on one host get different
// ids, and the lock dies with its process (flock), so a restart finds its
// slot free again. An explicit InstanceID takes the same lock, and a second
// live process on this host asking for it fails here. Instances on different
// hosts never share a default id (the host name differs; in Kubernetes it
// is the pod name); two live instances given the same InstanceID on
// different hosts fence each other, which the consumer reports as such (see
// errFenced).
func (c Config) transactionalIdentity(group string) (identity, error) {
	prefix := c.TransactionalIDPrefix
	if prefix == "" {
		prefix = group
	}
	dir := c.instanceLockDir
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "stockcast-kafka-ids")
	}
	if c.InstanceID != "" {
		id := prefix + "-" + c.InstanceID
		release, err := lockID(dir, id)
		if errors.Is(err, errIDHeld) {
			return identity{}, fmt.Errorf("kafka transactional id %s (-kafka.instance-id %s) is %w: two live instances must not share an id (they would fence each other)", id, c.InstanceID, err)
		}
		if err != nil {
			// The lock only guards this host; the id itself is the
			// operator's choice: go on without the guard.
			return identity{id: id, release: func() {}}, nil
		}
		return identity{id: id, release: release}, nil
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	host = strings.ReplaceAll(host, " ", "_")
	for n := range maxInstanceSlots {
		id := prefix + "-" + host + "-" + strconv.Itoa(n)
		release, err := lockID(dir, id)
		if errors.Is(err, errIDHeld) {
			continue
		}
		if err != nil {
			return identity{}, fmt.Errorf("kafka transactional id of group %s: %w (set -kafka.instance-id to a name unique among the live instances)", group, err)
		}
		return identity{id: id, release: release}, nil
	}
	return identity{}, fmt.Errorf("kafka transactional id of group %s: all %d slots of host %s are held by live processes", group, maxInstanceSlots, host)
}

// lockFile is the lock file of a transactional id in dir.
func lockFile(dir, id string) string {
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, id)
	return filepath.Join(dir, name+".lock")
}

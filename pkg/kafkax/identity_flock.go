//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package kafkax

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lockID takes an exclusive flock on id's lock file in dir without
// waiting: errIDHeld if a live process (or another Consumer of this
// process) holds it. The kernel drops the lock when its process dies,
// kill -9 included; the file stays (it is empty and reused).
func lockID(dir, id string) (release func(), err error) {
	if err := os.MkdirAll(dir, 0o1777); err != nil {
		return nil, fmt.Errorf("create lock dir: %w", err)
	}
	path := lockFile(dir, id)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o666)
	if errors.Is(err, os.ErrPermission) {
		f, err = os.Open(path) // another user's file: a read-only fd locks too
	}
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w (lock %s)", errIDHeld, path)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { _ = f.Close() }, nil
}

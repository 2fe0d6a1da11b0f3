//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package kafkax

import "errors"

// lockID cannot lock on this platform: the default instance id then falls
// back to an error asking for -kafka.instance-id.
func lockID(dir, id string) (release func(), err error) {
	return nil, errors.New("no file locks on this platform")
}

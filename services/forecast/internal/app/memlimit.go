package app

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
)

// The forecast service holds every series it scores (docs/load.md "The
// forecast service's memory"), so its heap grows with the series. Without a
// soft memory limit the Go runtime lets the heap grow to twice the live heap
// (GOGC=100) before a collection: at 1M series (~3 GB live) that crosses a
// 4 GiB container limit long before the live heap does. -memory.limit sets
// the runtime's soft limit (debug.SetMemoryLimit, what GOMEMLIMIT sets):
//
//   - "auto" (the default): GOMEMLIMIT if the environment sets it (the
//     runtime already applied it), else memoryLimitFraction of the
//     container's memory limit (cgroup v2 memory.max or v1
//     memory.limit_in_bytes, the smallest on the path to the root), else
//     none;
//   - a size ("3600MiB", "4GiB", "3774873600"): that limit;
//   - "off": no limit, GOMEMLIMIT ignored.

// memoryLimitFraction of the container's limit is the soft limit in auto
// mode: the rest is for what the Go runtime does not count (thread stacks
// outside the heap, the binary's text) and a margin for the GC to react.
const memoryLimitFraction = 0.9

// cgroupRoot is where the cgroup file systems are mounted.
const cgroupRoot = "/sys/fs/cgroup"

// unlimitedV1 is the smallest cgroup v1 memory.limit_in_bytes taken as no
// limit: the kernel writes its page-aligned maximum (9223372036854771712).
const unlimitedV1 = 1 << 62

// memoryLimit is a resolved soft memory limit.
type memoryLimit struct {
	// Bytes is the limit to set; 0 leaves the runtime's as it is, and
	// math.MaxInt64 is no limit.
	Bytes int64
	// Source says where it came from: "flag", "GOMEMLIMIT", "cgroup", "off"
	// or "none".
	Source string
	// Container is the container's memory limit in auto mode (0: none found).
	Container int64
}

// validateMemoryLimit checks a -memory.limit value.
func validateMemoryLimit(spec string) error {
	switch spec {
	case "auto", "off":
		return nil
	}
	_, err := parseSize(spec)
	return err
}

// resolveMemoryLimit resolves a -memory.limit value; root is the cgroup
// mount point and selfCgroup the content of /proc/self/cgroup.
func resolveMemoryLimit(spec string, getenv func(string) string, root string, selfCgroup []byte) (memoryLimit, error) {
	switch spec {
	case "off":
		return memoryLimit{Bytes: math.MaxInt64, Source: "off"}, nil
	case "auto":
	default:
		n, err := parseSize(spec)
		if err != nil {
			return memoryLimit{}, err
		}
		return memoryLimit{Bytes: n, Source: "flag"}, nil
	}
	if getenv("GOMEMLIMIT") != "" {
		return memoryLimit{Source: "GOMEMLIMIT"}, nil
	}
	c := containerLimit(root, selfCgroup)
	if c <= 0 {
		return memoryLimit{Source: "none"}, nil
	}
	return memoryLimit{Bytes: int64(float64(c) * memoryLimitFraction), Source: "cgroup", Container: c}, nil
}

// applyMemoryLimit resolves spec against this process's cgroups and sets
// the runtime's soft limit; it returns what it set.
func applyMemoryLimit(spec string, getenv func(string) string) (memoryLimit, error) {
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return memoryLimit{}, fmt.Errorf("read cgroups: %w", err)
	}
	l, err := resolveMemoryLimit(spec, getenv, cgroupRoot, self)
	if err != nil {
		return l, err
	}
	if l.Bytes > 0 {
		debug.SetMemoryLimit(l.Bytes)
	} else {
		l.Bytes = debug.SetMemoryLimit(-1) // the runtime's, to log it
	}
	return l, nil
}

// containerLimit returns the smallest memory limit on this process's cgroup
// path to the root (cgroup v2's memory.max, else v1's
// memory.limit_in_bytes), 0 if none. selfCgroup lines are
// "id:controllers:path"; directories that are not mounted (a container
// without a cgroup namespace sees its host path but only its own subtree)
// are skipped.
func containerLimit(root string, selfCgroup []byte) int64 {
	var v1, v2 string
	sc := bufio.NewScanner(bytes.NewReader(selfCgroup))
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			v2 = parts[2]
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == "memory" {
				v1 = parts[2]
			}
		}
	}
	if v1 != "" {
		if n := smallestOnPath(filepath.Join(root, "memory"), v1, "memory.limit_in_bytes"); n > 0 {
			return n
		}
	}
	if v2 != "" {
		return smallestOnPath(root, v2, "memory.max")
	}
	return 0
}

// smallestOnPath reads file in base/p and each of its parents up to base
// and returns the smallest limit, 0 if none ("max", or v1's unlimited).
func smallestOnPath(base, p, file string) int64 {
	var best int64
	for dir := path.Clean("/" + p); ; dir = path.Dir(dir) {
		b, err := os.ReadFile(filepath.Join(base, filepath.FromSlash(dir), file))
		if err == nil {
			s := strings.TrimSpace(string(b))
			if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 && n < unlimitedV1 && (best == 0 || n < best) {
				best = n
			}
		}
		if dir == "/" {
			return best
		}
	}
}

// parseSize parses a size as GOMEMLIMIT writes it: a whole number of bytes
// with an optional unit B, KiB, MiB, GiB or TiB.
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}
	num, mult := s, int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			num, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("memory limit %q: want auto, off or a size such as 3600MiB", s)
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("memory limit %q: too large", s)
	}
	return n * mult, nil
}

package loadgen

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat
// (100 on every Linux platform Go supports).
const clockTicks = 100

// ProcSample is one reading of a process's CPU time and resident memory.
type ProcSample struct {
	CPUTicks int64 // utime + stime, in 1/100 s
	RSS      int64 // bytes
}

// ReadProc reads /proc/<pid>/stat.
func ReadProc(pid int) (ProcSample, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ProcSample{}, fmt.Errorf("read cpu and memory of pid %d: %w", pid, err)
	}
	return parseStat(string(b))
}

// parseStat reads utime, stime (fields 14, 15) and rss (field 24, pages)
// from a /proc/<pid>/stat line; the command name in parentheses may hold
// spaces, so fields are counted after its closing parenthesis.
func parseStat(s string) (ProcSample, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return ProcSample{}, fmt.Errorf("parse /proc stat %q: no command name", s)
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state)
	if len(f) < 22 {
		return ProcSample{}, fmt.Errorf("parse /proc stat: %d fields after the name, want at least 22", len(f))
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	rss, err3 := strconv.ParseInt(f[21], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return ProcSample{}, fmt.Errorf("parse /proc stat fields %q %q %q", f[11], f[12], f[21])
	}
	return ProcSample{CPUTicks: ut + st, RSS: rss * int64(os.Getpagesize())}, nil
}

// PIDListening returns the process that listens on the TCP address addr
// (host:port), found through /proc/net/tcp{,6} and the processes' open
// sockets; it sees only processes of the same user.
func PIDListening(addr string) (int, error) {
	_, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, fmt.Errorf("find the process listening on %s: %w", addr, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return 0, fmt.Errorf("find the process listening on %s: %w", addr, err)
	}
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		listeningInodes(f, port, inodes)
	}
	if len(inodes) == 0 {
		return 0, fmt.Errorf("find the process listening on %s: no listening socket", addr)
	}
	dirs, _ := filepath.Glob("/proc/[0-9]*/fd")
	for _, d := range dirs {
		fds, err := os.ReadDir(d)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join(d, fd.Name()))
			if err != nil || !strings.HasPrefix(link, "socket:[") {
				continue
			}
			if inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] {
				return strconv.Atoi(filepath.Base(filepath.Dir(d)))
			}
		}
	}
	return 0, fmt.Errorf("find the process listening on %s: no process of this user holds its socket", addr)
}

// listeningInodes adds the inodes of the sockets listening on port in one
// /proc/net/tcp table.
func listeningInodes(path string, port int, into map[string]bool) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 10 || fs[3] != "0A" { // 0A: LISTEN
			continue
		}
		local := fs[1]
		j := strings.LastIndexByte(local, ':')
		p, err := strconv.ParseInt(local[j+1:], 16, 32)
		if err == nil && int(p) == port {
			into[fs[9]] = true
		}
	}
}

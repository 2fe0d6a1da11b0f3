// Package stacktest helps tests that run the real local stack: it builds the
// service binaries and checks that no process is left behind.
package stacktest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stockcast/stockcast/internal/stack"
)

// BuildServices builds the four service binaries and the console with `go build` into a
// temporary directory and returns it, for stack.Config.BinDir.
func BuildServices(t testing.TB) string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	args := []string{"build", "-o", bin + string(os.PathSeparator)}
	for _, s := range append(stack.Services(), stack.Console) {
		args = append(args, "./services/"+s+"/cmd/"+s)
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("build services: go %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	t.Logf("built the services in %s", time.Since(start).Round(time.Millisecond))
	return bin
}

// moduleRoot finds the directory of the stockcast go.mod.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside the stockcast module")
	}
	return filepath.Dir(mod), nil
}

// ProcessesMentioning returns the pids of live processes whose command line
// mentions any of the given strings (a stack's directory, its bin
// directory), other than the current process.
func ProcessesMentioning(needles ...string) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	self := os.Getpid()
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(cmdline) == 0 { // gone, or a zombie/kernel thread
			continue
		}
		line := string(bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}))
		for _, n := range needles {
			if strings.Contains(line, n) {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids, nil
}

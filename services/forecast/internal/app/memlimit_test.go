package app

import (
	"context"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"3774873600", 3774873600},
		{"3600MiB", 3600 << 20},
		{"4GiB", 4 << 30},
		{"512KiB", 512 << 10},
		{"1TiB", 1 << 40},
		{"100B", 100},
	} {
		got, err := parseSize(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "0", "-1GiB", "4GB", "4 GiB", "1.5GiB", "GiB", "9000000TiB", "auto "} {
		if got, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", in, got)
		}
	}
}

// writeFiles writes name -> content under root.
func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestResolveMemoryLimit(t *testing.T) {
	noEnv := func(string) string { return "" }
	const gib = 1 << 30
	for _, tc := range []struct {
		name       string
		spec       string
		env        map[string]string
		files      map[string]string
		selfCgroup string
		want       memoryLimit
	}{
		{
			name: "v2: 90% of the container's memory.max", spec: "auto",
			files:      map[string]string{"kubepods/pod1/c1/memory.max": "4294967296\n"},
			selfCgroup: "0::/kubepods/pod1/c1\n",
			want:       memoryLimit{Bytes: 3865470566, Source: "cgroup", Container: 4 * gib},
		},
		{
			name: "v2: the smallest on the path, max skipped", spec: "auto",
			files: map[string]string{
				"kubepods/memory.max":         "8589934592\n",
				"kubepods/pod1/memory.max":    "2147483648\n",
				"kubepods/pod1/c1/memory.max": "max\n",
			},
			selfCgroup: "0::/kubepods/pod1/c1\n",
			want:       memoryLimit{Bytes: 1932735283, Source: "cgroup", Container: 2 * gib},
		},
		{
			name: "v2 with a cgroup namespace: the root's own file", spec: "auto",
			files:      map[string]string{"memory.max": "1073741824\n"},
			selfCgroup: "0::/\n",
			want:       memoryLimit{Bytes: 966367641, Source: "cgroup", Container: gib},
		},
		{
			name: "v2: no limit anywhere", spec: "auto",
			files:      map[string]string{"user.slice/memory.max": "max\n"},
			selfCgroup: "0::/user.slice\n",
			want:       memoryLimit{Source: "none"},
		},
		{
			name: "v1: memory.limit_in_bytes, the host path not mounted", spec: "auto",
			files: map[string]string{
				"memory/memory.limit_in_bytes": "4294967296\n",
				"cpu/cpu.shares":               "1024\n",
			},
			selfCgroup: "4:memory:/docker/abc123\n3:cpu,cpuacct:/docker/abc123\n0::/\n",
			want:       memoryLimit{Bytes: 3865470566, Source: "cgroup", Container: 4 * gib},
		},
		{
			name: "v1: the kernel's unlimited", spec: "auto",
			files: map[string]string{
				"memory/memory.limit_in_bytes":         "9223372036854771712\n",
				"memory/process/memory.limit_in_bytes": "9223372036854771712\n",
			},
			selfCgroup: "4:memory:/process\n",
			want:       memoryLimit{Source: "none"},
		},
		{
			name: "no cgroups readable", spec: "auto",
			want: memoryLimit{Source: "none"},
		},
		{
			name: "GOMEMLIMIT wins over the container's", spec: "auto",
			env:        map[string]string{"GOMEMLIMIT": "1GiB"},
			files:      map[string]string{"memory.max": "4294967296\n"},
			selfCgroup: "0::/\n",
			want:       memoryLimit{Source: "GOMEMLIMIT"},
		},
		{
			name: "a size wins over GOMEMLIMIT and the container's", spec: "3600MiB",
			env:        map[string]string{"GOMEMLIMIT": "1GiB"},
			files:      map[string]string{"memory.max": "4294967296\n"},
			selfCgroup: "0::/\n",
			want:       memoryLimit{Bytes: 3600 << 20, Source: "flag"},
		},
		{
			name: "off: no limit, GOMEMLIMIT ignored", spec: "off",
			env:  map[string]string{"GOMEMLIMIT": "1GiB"},
			want: memoryLimit{Bytes: math.MaxInt64, Source: "off"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			writeFiles(t, root, tc.files)
			getenv := noEnv
			if tc.env != nil {
				getenv = func(k string) string { return tc.env[k] }
			}
			got, err := resolveMemoryLimit(tc.spec, getenv, root, []byte(tc.selfCgroup))
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	if _, err := resolveMemoryLimit("lots", noEnv, t.TempDir(), nil); err == nil {
		t.Error("resolveMemoryLimit(lots): no error")
	}
}

// TestApplyMemoryLimit sets the runtime's limit from the flag, as the
// service does at start.
func TestApplyMemoryLimit(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	got, err := applyMemoryLimit("3600MiB", func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if got.Source != "flag" || got.Bytes != 3600<<20 {
		t.Errorf("applied %+v", got)
	}
	if now := debug.SetMemoryLimit(-1); now != 3600<<20 {
		t.Errorf("runtime limit %d after -memory.limit=3600MiB, want %d", now, 3600<<20)
	}
	if _, err := applyMemoryLimit("off", func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	if now := debug.SetMemoryLimit(-1); now != math.MaxInt64 {
		t.Errorf("runtime limit %d after -memory.limit=off, want none", now)
	}
}

// TestMemoryLimitFlagValidated: a bad -memory.limit stops the service
// before it connects to anything.
func TestMemoryLimitFlagValidated(t *testing.T) {
	err := Run(context.Background(), []string{"-memory.limit=4GB"}, func(string) string { return "" }, io.Discard)
	if err == nil || !strings.Contains(err.Error(), `memory limit "4GB"`) {
		t.Fatalf("Run(-memory.limit=4GB) = %v, want the memory limit's validation error", err)
	}
	err = Run(context.Background(), []string{"-memory.limit=lots"}, func(k string) string { return "" }, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "validate config") {
		t.Fatalf("Run(-memory.limit=lots) = %v, want a validation error", err)
	}
}

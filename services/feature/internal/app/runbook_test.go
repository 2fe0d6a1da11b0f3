package app

import (
	"encoding/json"
	"flag"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestRunbookRebuildInvocations: every `feature rebuild ...` / `rebuild
// ...` the runbook shows (inline, or as a container's args) uses flags the
// rebuild mode has.
func TestRunbookRebuildInvocations(t *testing.T) {
	md, err := os.ReadFile("../../../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	var cfg rebuildConfig
	fs := flag.NewFlagSet("rebuild", flag.ContinueOnError)
	cfg.RegisterFlags(fs)

	var invs [][]string
	for _, m := range regexp.MustCompile(`"args":(\["rebuild"[^\]]*\])`).FindAllStringSubmatch(string(md), -1) {
		var args []string
		if err := json.Unmarshal([]byte(m[1]), &args); err != nil {
			t.Fatalf("args %s: %v", m[1], err)
		}
		invs = append(invs, args[1:])
	}
	for _, m := range regexp.MustCompile("`(?:feature )?rebuild( [^`]*)`").FindAllStringSubmatch(string(md), -1) {
		invs = append(invs, strings.Fields(m[1]))
	}
	if len(invs) < 2 {
		t.Fatalf("found %d rebuild invocations in the runbook, want the Job's args and the inline ones", len(invs))
	}
	t.Logf("rebuild invocations in the runbook: %q", invs)
	for _, args := range invs {
		for _, a := range args {
			if !strings.HasPrefix(a, "-") {
				continue
			}
			name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
			if fs.Lookup(name) == nil {
				t.Errorf("runbook: rebuild %v uses -%s, which rebuild does not have", args, name)
			}
		}
	}
}

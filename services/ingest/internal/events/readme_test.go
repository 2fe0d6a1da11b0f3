package events

import (
	"os"
	"regexp"
	"testing"
)

// TestReadmeListsEveryReason keeps the reason table of the README and the
// constants in step, both ways.
func TestReadmeListsEveryReason(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[Reason]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z_]+)` \\|").FindAllSubmatch(b, -1) {
		documented[Reason(m[1])] = true
	}
	known := map[Reason]bool{}
	for _, r := range AllReasons {
		known[r] = true
		if !documented[r] {
			t.Errorf("reason %s is not in the README's table", r)
		}
	}
	for r := range documented {
		if !known[r] {
			t.Errorf("README documents reason %s, which the code does not have", r)
		}
	}
	if len(documented) == 0 {
		t.Fatal("no reason table found in the README")
	}
}

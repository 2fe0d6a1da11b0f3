package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// runbook is the operations runbook; every `stockcast ...` invocation in its
// code must be a registered command (and subcommand) with the flags shown.
const runbook = "../../docs/operations.md"

// invocation is one `stockcast <command> [<subcommand>] [flags]` found in
// the runbook's code.
type invocation struct {
	line  string
	words []string // command and subcommand
	flags []string // flag names, without dashes
}

var (
	fenceRe  = regexp.MustCompile("(?s)```[a-z]*\n(.*?)```")
	inlineRe = regexp.MustCompile("`([^`]+)`") // a span may wrap a line
	wordRe   = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)
)

// invocations extracts the stockcast invocations from markdown: lines of
// fenced blocks (joined at trailing backslashes, split at ;, && and |)
// and inline code spans that start with "stockcast ".
func invocations(md string) []invocation {
	var cmds []string
	for _, m := range fenceRe.FindAllStringSubmatch(md, -1) {
		block := strings.ReplaceAll(m[1], "\\\n", " ")
		for _, line := range strings.Split(block, "\n") {
			if i := strings.Index(line, "#"); i >= 0 {
				line = line[:i] // shell comment
			}
			for _, part := range regexp.MustCompile(`&&|;|\|`).Split(line, -1) {
				cmds = append(cmds, strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(part), "$ ")))
			}
		}
	}
	outside := fenceRe.ReplaceAllString(md, "")
	for _, m := range inlineRe.FindAllStringSubmatch(outside, -1) {
		cmds = append(cmds, strings.Join(strings.Fields(m[1]), " "))
	}
	var out []invocation
	for _, c := range cmds {
		f := strings.Fields(c)
		if len(f) < 2 || f[0] != "stockcast" || !wordRe.MatchString(f[1]) {
			continue
		}
		inv := invocation{line: c, words: []string{f[1]}}
		rest := f[2:]
		if len(rest) > 0 && wordRe.MatchString(rest[0]) {
			inv.words = append(inv.words, rest[0])
			rest = rest[1:]
		}
		for _, tok := range rest {
			if !strings.HasPrefix(tok, "-") || tok == "-" {
				continue
			}
			name, _, _ := strings.Cut(strings.TrimLeft(tok, "-"), "=")
			if name != "" && name != "h" {
				inv.flags = append(inv.flags, name)
			}
		}
		out = append(out, inv)
	}
	return out
}

// checkInvocation runs `stockcast <words> -h`: a registered command prints
// its flags and returns nil; each flag the runbook uses must be listed.
func checkInvocation(inv invocation) error {
	var stdout, stderr bytes.Buffer
	args := append(append([]string(nil), inv.words...), "-h")
	if err := Run(context.Background(), args, func(string) string { return "" }, &stdout, &stderr); err != nil {
		return fmt.Errorf("`stockcast %s`: %v", strings.Join(inv.words, " "), err)
	}
	usage := stderr.String() + stdout.String()
	for _, f := range inv.flags {
		if !regexp.MustCompile(`(?m)^\s+-` + regexp.QuoteMeta(f) + `(\s|$)`).MatchString(usage) {
			return fmt.Errorf("`%s`: stockcast %s has no flag -%s", inv.line, strings.Join(inv.words, " "), f)
		}
	}
	return nil
}

func TestRunbookCommandsExist(t *testing.T) {
	md, err := os.ReadFile(runbook)
	if err != nil {
		t.Fatal(err)
	}
	invs := invocations(string(md))
	seen := map[string]bool{}
	t.Logf("%d stockcast invocations in %s", len(invs), runbook)
	for _, inv := range invs {
		seen[strings.Join(inv.words, " ")] = true
		if err := checkInvocation(inv); err != nil {
			t.Error(err)
		}
	}
	// The runbook's procedures need these; a broken extractor finds none.
	for _, want := range []string{"topics create", "offsets reset", "dlq redrive", "replay", "train"} {
		if !seen[want] {
			t.Errorf("runbook shows no `stockcast %s` (found %v)", want, seen)
		}
	}
}

// TestRunbookCheckFails: the check rejects what does not exist.
func TestRunbookCheckFails(t *testing.T) {
	md := "text `stockcast run feature-rebuild` and\n```\nkubectl -n stockcast scale deploy/x   # not stockcast's\n" +
		"stockcast dlq redrive --topic a.dlq \\\n  --no-such-flag 1\nstockcast dlq replay --topic a\nstockcast offsets reset --group g --to-time x\n```\n"
	invs := invocations(md)
	var got []string
	for _, inv := range invs {
		err := checkInvocation(inv)
		got = append(got, fmt.Sprintf("%s %v: %v", strings.Join(inv.words, " "), inv.flags, err != nil))
	}
	want := []string{
		"dlq redrive [topic no-such-flag]: true",
		"dlq replay [topic]: true",
		"offsets reset [group to-time]: false",
		"run feature-rebuild []: true",
	}
	sort.Strings(got)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("checked:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

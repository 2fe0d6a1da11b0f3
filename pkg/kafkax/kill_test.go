package kafkax

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockcast/stockcast/pkg/telemetry"
)

// killHelperEnv makes the test binary run killHelper instead of the tests:
// "<brokers>|<at-least-once>|<instance lock dir>|<transaction timeout>".
const killHelperEnv = "STOCKCAST_KAFKAX_KILL_HELPER"

func TestMain(m *testing.M) {
	if v := os.Getenv(killHelperEnv); v != "" {
		killHelper(v)
		return
	}
	if v := os.Getenv(gatherHelperEnv); v != "" {
		gatherHelper(v)
		return
	}
	os.Exit(m.Run())
}

// killHelper consumes features.v1 as group "gr", produces every output of
// its first poll, prints "produced <the poll's input values, comma-separated>"
// and hangs until it is killed.
func killHelper(v string) {
	f := strings.Split(v, "|")
	cfg := shortSession(testConfig(strings.Split(f[0], ",")))
	cfg.AtLeastOnce = f[1] == "true"
	cfg.instanceLockDir = f[2]
	d, err := time.ParseDuration(f[3])
	if err != nil {
		panic(err)
	}
	cfg.TransactionTimeout = d
	p, err := NewProducer(cfg, telemetry.NewDiscard())
	if err != nil {
		panic(err)
	}
	h := &transform{p: p, out: "forecasts.v1", prefix: "out:"}
	h.onInputs = func(recs []*kgo.Record) {
		vals := make([]string, len(recs))
		for i, r := range recs {
			vals[i] = string(r.Value)
		}
		os.Stdout.WriteString("produced " + strings.Join(vals, ",") + "\n")
		select {} // killed here, between produce and commit
	}
	c, err := NewConsumer(cfg, "gr", []string{"features.v1"}, h, telemetry.NewDiscard())
	if err != nil {
		panic(err)
	}
	_ = c.Run(context.Background())
}

// A consumer killed (SIGKILL) after producing a batch's outputs and before
// committing leaves, once the next member has handled the batch again,
// exactly one visible copy of each output with transactions, two without.
func TestTransactionKilledBetweenProduceAndCommit(t *testing.T) {
	for _, tc := range []struct {
		name        string
		atLeastOnce bool
		wantCopies  int
	}{
		{"transactions", false, 1},
		{"at-least-once", true, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := startBroker(t, "")
			cfg := shortSession(testConfig(e.Brokers()))
			cfg.AtLeastOnce = tc.atLeastOnce
			cfg.instanceLockDir = t.TempDir()
			cfg.TransactionTimeout = 2 * time.Second
			ctx := context.Background()
			const in, out = txnIn, txnOut
			tel, p, adm := txnSetup(t, cfg)
			recs, ends := produceKeyed(t, p, in)

			first := killAfterProduce(t, killHelperValue(cfg))

			h := &transform{p: p, out: out, prefix: "out:"}
			c, err := NewConsumer(cfg, "gr", []string{in}, h, tel)
			if err != nil {
				t.Fatal(err)
			}
			stop := runConsumer(t, c)
			waitFor(t, 30*time.Second, "every input committed", func() bool { return committedAll(ctx, adm, "gr", in, ends) })
			stop()

			// The killed helper's first poll (not always every partition)
			// was produced twice; the rest once.
			got := countValues(readOutputs(t, cfg.Brokers, out, 3, kgo.ReadCommitted()))
			for _, r := range recs {
				want := 1
				if first[string(r.Value)] {
					want = tc.wantCopies
				}
				if n := got["out:"+string(r.Value)]; n != want {
					t.Errorf("read_committed: output of %s seen %d times, want %d", r.Value, n, want)
				}
			}
			if len(got) != len(recs) {
				t.Errorf("read_committed: %d distinct outputs, want %d", len(got), len(recs))
			}
		})
	}
}

// killHelperValue is the killHelperEnv value for a helper with cfg's
// brokers, delivery, instance lock dir and transaction timeout.
func killHelperValue(cfg Config) string {
	return strings.Join([]string{strings.Join(cfg.Brokers, ","), strconv.FormatBool(cfg.AtLeastOnce), cfg.instanceLockDir, cfg.TransactionTimeout.String()}, "|")
}

// killAfterProduce runs killHelper in a child process with env value v,
// waits until it has produced its first poll's outputs (transaction still
// open), kills it with SIGKILL and returns the inputs of that poll.
func killAfterProduce(t *testing.T, v string) map[string]bool {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), killHelperEnv+"="+v)
	cmd.Stderr = t.Output()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- s
	}()
	first := map[string]bool{}
	select {
	case s := <-line:
		vals, ok := strings.CutPrefix(strings.TrimSuffix(s, "\n"), "produced ")
		if !ok || vals == "" {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("helper said %q", s)
		}
		for _, v := range strings.Split(vals, ",") {
			first[v] = true
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatal("the helper produced nothing")
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	return first
}

package kafkax

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockcast/stockcast/pkg/telemetry"
)

// A transaction open on the broker for more than half its timeout (from its
// first produce to the end's answer) is logged with where the time went;
// one open for less is only counted. Both are in
// stockcast_kafka_transaction_seconds by outcome.
func TestTransactionOpenLongIsLogged(t *testing.T) {
	var logs bytes.Buffer
	tel := telemetry.NewForTest(&logs)
	ins, err := newInstruments(tel)
	if err != nil {
		t.Fatal(err)
	}
	c := &Consumer{cfg: Config{TransactionTimeout: 10 * time.Second}, ins: ins, log: tel.Logger}
	parts := []kgo.FetchTopicPartition{{Topic: "in", FetchPartition: kgo.FetchPartition{Partition: 0, Records: []*kgo.Record{
		{Topic: "in", Key: []byte("k1"), Value: []byte("12345")}, {Topic: "in", Key: []byte("k2"), Value: []byte("678")},
	}}}}
	ctx := context.Background()

	// Opened by its produce 6 s ago, the handler returned 2 s ago: open
	// at least 6 s, above 5 s.
	now := time.Now()
	long := &txn{}
	long.produceStart.Store(now.Add(-6 * time.Second).UnixNano())
	c.timeTransaction(ctx, long, parts, 2, now.Add(-7*time.Second), now.Add(-2*time.Second), false, nil, errFenced)
	// Produced nothing, handled in 8 s: open only while ending, not logged.
	c.timeTransaction(ctx, &txn{}, parts, 2, now.Add(-8*time.Second), time.Now(), true, nil, nil)

	assertMetric(t, tel, "stockcast_kafka_transaction_seconds", map[string]string{"outcome": "failed"}, 1)
	assertMetric(t, tel, "stockcast_kafka_transaction_seconds", map[string]string{"outcome": "committed"}, 1)
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("logged %d lines, want 1:\n%s", len(lines), logs.String())
	}
	line := lines[0]
	for _, want := range []string{"level=WARN", `msg="transaction open long`, "timeout=10s", "outcome=failed",
		"records=2", "bytes=12", "partitions=1", "handle_before_produce=1s", "handle_after_produce=4s", "end_err=\"fenced:"} {
		if !strings.Contains(line, want) {
			t.Errorf("log line lacks %q: %s", want, line)
		}
	}
}

// The embedded broker's warnings and errors reach EmbeddedConfig.Logger
// (its transaction timeouts among them), not its info, debug and per-EndTxn
// timing lines.
func TestEmbeddedBrokerLogger(t *testing.T) {
	var logs bytes.Buffer
	l := kfakeLogger{slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	l.Logf(kfake.LogLevelWarn, "txn timeout abort: txn_id=%s elapsed=%v", "x-1", 10*time.Second)
	l.Logf(kfake.LogLevelError, "persist to disk: %v", "full")
	l.Logf(kfake.LogLevelWarn, "txn: EndTxn slow pid=%d elapsed=%dms", 1, 7)
	l.Logf(kfake.LogLevelInfo, "consumerJoin: group=%s", "g")
	l.Logf(kfake.LogLevelDebug, "request")
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	want := []string{
		`level=WARN msg="kafka broker: txn timeout abort: txn_id=x-1 elapsed=10s"`,
		`level=ERROR msg="kafka broker: persist to disk: full"`,
	}
	if len(lines) != len(want) {
		t.Fatalf("logged %d lines, want %d:\n%s", len(lines), len(want), logs.String())
	}
	for i, w := range want {
		if !strings.Contains(lines[i], w) {
			t.Errorf("line %d = %s, want it to contain %s", i, lines[i], w)
		}
	}
}

package kafkax

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockcast/stockcast/pkg/telemetry"
)

// BenchmarkTransactionCost consumes benchRecords records and produces one
// output each, with transactions and without (the baseline), alternating in
// every iteration on a fresh embedded broker, and reports both variants'
// wall and CPU time (this process: broker, consumer, producer) per record
// and their ratios, transactions / at-least-once. Run it as
//
//	go test -run '^$' -bench TransactionCost -benchtime 3x ./pkg/kafkax
func BenchmarkTransactionCost(b *testing.B) {
	const benchRecords = 20_000
	var wall, cpu [2]time.Duration // 0: at-least-once, 1: transactions
	for i := 0; b.Loop(); i++ {
		for j := range 2 {
			v := (i + j) % 2 // alternate which variant goes first
			w, c := runTransform(b, v == 0, benchRecords)
			wall[v] += w
			cpu[v] += c
		}
	}
	n := float64(b.N * benchRecords)
	b.ReportMetric(float64(wall[1].Nanoseconds())/n, "txn-wall-ns/rec")
	b.ReportMetric(float64(wall[0].Nanoseconds())/n, "alo-wall-ns/rec")
	b.ReportMetric(float64(cpu[1].Nanoseconds())/n, "txn-cpu-ns/rec")
	b.ReportMetric(float64(cpu[0].Nanoseconds())/n, "alo-cpu-ns/rec")
	b.ReportMetric(float64(wall[1])/float64(wall[0]), "wall-ratio")
	b.ReportMetric(float64(cpu[1])/float64(cpu[0]), "cpu-ratio")
}

// runTransform produces n inputs on a fresh broker, then times a consumer
// that turns each into one output until every input is committed.
func runTransform(b *testing.B, atLeastOnce bool, n int) (wall, cpu time.Duration) {
	b.Helper()
	e, err := StartEmbedded(EmbeddedConfig{Partitions: 3})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	cfg := Config{Brokers: e.Brokers(), Partitions: 3, AtLeastOnce: atLeastOnce, instanceLockDir: b.TempDir()}
	ctx := context.Background()
	const in, out = "features.v1", "forecasts.v1"
	if err := EnsureTopics(ctx, cfg, in, out); err != nil {
		b.Fatal(err)
	}
	tel := telemetry.NewDiscard()
	p, err := NewProducer(cfg, tel)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	recs := make([]*kgo.Record, n)
	ends := map[int32]int64{}
	for i := range recs {
		key := fmt.Sprintf("sku%d|online", i%1000)
		recs[i] = &kgo.Record{Topic: in, Key: []byte(key), Value: []byte(fmt.Sprintf("%s#%d", key, i))}
	}
	if err := p.Produce(ctx, recs...); err != nil {
		b.Fatal(err)
	}
	for _, r := range recs {
		ends[r.Partition] = max(ends[r.Partition], r.Offset+1)
	}
	adm, err := kadm.NewOptClient(kgo.SeedBrokers(cfg.Brokers...))
	if err != nil {
		b.Fatal(err)
	}
	defer adm.Close()
	c, err := NewConsumer(cfg, "gr", []string{in}, &transform{p: p, out: out, prefix: "out:"}, tel)
	if err != nil {
		b.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	cpu0, start := cpuTime(), time.Now()
	go func() { errc <- c.Run(runCtx) }()
	deadline := start.Add(2 * time.Minute)
	for !committedAll(ctx, adm, "gr", in, ends) {
		if time.Now().After(deadline) {
			b.Fatal("inputs not committed within 2 minutes")
		}
		time.Sleep(5 * time.Millisecond) // polling interval
	}
	wall, cpu = time.Since(start), cpuTime()-cpu0
	cancel()
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	return wall, cpu
}

// cpuTime is the CPU time (user + system) of this process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

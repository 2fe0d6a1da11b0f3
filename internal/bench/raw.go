// Package bench measures the raw rate of the Kafka broker with records
// like the pipeline's, as a yardstick for the pipeline's throughput.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockcast/stockcast/internal/replay"
	"github.com/stockcast/stockcast/pkg/kafkax"
	"github.com/stockcast/stockcast/pkg/retail"
)

// RawResult is the outcome of RawBroker.
type RawResult struct {
	Topic    string
	Records  int
	Bytes    int64         // keys and values
	Elapsed  time.Duration // first produce to last record consumed back
	PerSec   float64       // records per second over Elapsed
	AvgBytes float64
}

// RecordsFromData returns the Kafka records of the first n lines of the
// Online Retail file (the same protobuf values, keys and headers the replay
// produces), retargeted to topic.
func RecordsFromData(path string, n int, topic string) ([]*kgo.Record, error) {
	rd, err := retail.Open(path)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	recs := make([]*kgo.Record, 0, n)
	for len(recs) < n {
		l, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read benchmark records: %w", err)
		}
		ev, err := retail.Map(l)
		if err != nil {
			return nil, err
		}
		r, err := replay.Record(ev)
		if err != nil {
			return nil, err
		}
		r.Topic = topic
		recs = append(recs, r)
	}
	return recs, nil
}

// RawBroker produces recs (all to one fresh topic, which it creates and
// deletes) with the replay's producer settings while a plain consumer reads
// them back, and measures records per second from the first produce to the
// last record consumed.
func RawBroker(ctx context.Context, kc kafkax.Config, recs []*kgo.Record) (RawResult, error) {
	if len(recs) == 0 {
		return RawResult{}, errors.New("raw broker benchmark: no records")
	}
	topic := recs[0].Topic
	if err := kafkax.EnsureTopics(ctx, kc, topic); err != nil {
		return RawResult{}, fmt.Errorf("raw broker benchmark: %w", err)
	}
	admCl, err := kgo.NewClient(kgo.SeedBrokers(kc.Brokers...))
	if err != nil {
		return RawResult{}, fmt.Errorf("create kafka admin client: %w", err)
	}
	defer admCl.Close()
	defer func() {
		// A benchmark topic is garbage afterwards; a failed delete only wastes space.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_, _ = kadm.NewClient(admCl).DeleteTopics(dctx, topic)
	}()

	consumer, err := kgo.NewClient(
		kgo.SeedBrokers(kc.Brokers...),
		kgo.ClientID("stockcast-bench-consumer"),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(50*time.Millisecond),
		kafkax.ReadCommitted(),
	)
	if err != nil {
		return RawResult{}, fmt.Errorf("create benchmark consumer: %w", err)
	}
	defer consumer.Close()
	producer, err := replay.NewRawClient(kc.Brokers, "stockcast-bench-producer")
	if err != nil {
		return RawResult{}, err
	}
	defer producer.Close()

	var res RawResult
	res.Topic, res.Records = topic, len(recs)
	for _, r := range recs {
		res.Bytes += int64(len(r.Key) + len(r.Value))
	}
	res.AvgBytes = float64(res.Bytes) / float64(len(recs))

	// Connect before the clock starts, so that dialling is not measured.
	if err := consumer.Ping(ctx); err != nil {
		return RawResult{}, fmt.Errorf("connect benchmark consumer: %w", err)
	}

	var (
		mu      sync.Mutex
		prodErr error
	)
	start := time.Now()
	go func() {
		for _, r := range recs {
			producer.Produce(ctx, r, func(_ *kgo.Record, err error) {
				if err != nil {
					mu.Lock()
					prodErr = errors.Join(prodErr, err)
					mu.Unlock()
				}
			})
		}
	}()
	got := 0
	for got < len(recs) {
		f := consumer.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("raw broker benchmark: consumed %d of %d: %w", got, len(recs), err)
		}
		if err := f.Err0(); err != nil {
			return res, fmt.Errorf("raw broker benchmark: consume %s: %w", topic, err)
		}
		got += f.NumRecords()
		mu.Lock()
		err := prodErr
		mu.Unlock()
		if err != nil {
			return res, fmt.Errorf("raw broker benchmark: produce to %s: %w", topic, err)
		}
	}
	res.Elapsed = time.Since(start)
	res.PerSec = float64(res.Records) / res.Elapsed.Seconds()
	return res, nil
}

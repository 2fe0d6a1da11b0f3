package kafkax

import (
	"fmt"

	"go.opentelemetry.io/otel/metric"

	"github.com/stockcast/stockcast/pkg/telemetry"
)

// meterName is the instrumentation scope of the generic Kafka metrics.
const meterName = "github.com/stockcast/stockcast/pkg/kafkax"

// instruments are the generic metrics every service gets from kafkax. The
// Prometheus names are in the comments; the SDK returns the same instrument
// when a producer and a consumer of one process ask for it.
type instruments struct {
	consumed        metric.Int64Counter     // stockcast_consumed_total{topic}
	produced        metric.Int64Counter     // stockcast_produced_total{topic}
	rejected        metric.Int64Counter     // stockcast_rejected_total{reason}
	handlerErrors   metric.Int64Counter     // stockcast_handler_errors_total{topic}
	handlerDuration metric.Float64Histogram // stockcast_handler_duration_seconds{topic}
	lag             metric.Int64Gauge       // stockcast_consumer_lag{topic,partition}
	txnAborted      metric.Int64Counter     // stockcast_kafka_transactions_aborted_total{reason}
	polls           metric.Int64Counter     // stockcast_consumer_polls_total
	txnDuration     metric.Float64Histogram // stockcast_kafka_transaction_seconds{outcome}
}

func newInstruments(tel *telemetry.Telemetry) (*instruments, error) {
	m := tel.Meter.Meter(meterName)
	var ins instruments
	var err error
	if ins.consumed, err = m.Int64Counter("stockcast.consumed", metric.WithDescription("Records handled successfully, by topic.")); err != nil {
		return nil, fmt.Errorf("create consumed counter: %w", err)
	}
	if ins.produced, err = m.Int64Counter("stockcast.produced", metric.WithDescription("Records produced and acknowledged, by topic; records of a consumer's transaction once it commits.")); err != nil {
		return nil, fmt.Errorf("create produced counter: %w", err)
	}
	if ins.rejected, err = m.Int64Counter("stockcast.rejected", metric.WithDescription("Records sent to a dead-letter topic, by reason.")); err != nil {
		return nil, fmt.Errorf("create rejected counter: %w", err)
	}
	if ins.handlerErrors, err = m.Int64Counter("stockcast.handler.errors", metric.WithDescription("Failed handler attempts (the batch is retried), by topic.")); err != nil {
		return nil, fmt.Errorf("create handler errors counter: %w", err)
	}
	if ins.handlerDuration, err = m.Float64Histogram("stockcast.handler.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of one handler call on one batch (or, with -kafka.partition-at-a-time, one partition of it)."),
		metric.WithExplicitBucketBoundaries(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)); err != nil {
		return nil, fmt.Errorf("create handler duration histogram: %w", err)
	}
	if ins.lag, err = m.Int64Gauge("stockcast.consumer.lag", metric.WithDescription("Records behind the high watermark when the last batch was fetched.")); err != nil {
		return nil, fmt.Errorf("create consumer lag gauge: %w", err)
	}
	if ins.txnAborted, err = m.Int64Counter("stockcast.kafka.transactions.aborted", metric.WithDescription(
		"Consumer transactions aborted, by reason: handler_error (the poll is handled again), lost (partitions revoked or lost, or fenced by the group generation: the batch goes to the next owner), shutdown, fenced (a newer epoch took the transactional id: a live twin, or a transaction older than its timeout; the consumer stops).")); err != nil {
		return nil, fmt.Errorf("create aborted transactions counter: %w", err)
	}
	if ins.polls, err = m.Int64Counter("stockcast.consumer.polls", metric.WithDescription(
		"Polls that returned records; several polls make one batch (one handler call, one transaction or offset commit) when records were already fetched or with -kafka.batch-wait.")); err != nil {
		return nil, fmt.Errorf("create polls counter: %w", err)
	}
	if ins.txnDuration, err = m.Float64Histogram("stockcast.kafka.transaction", metric.WithUnit("s"),
		metric.WithDescription("How long a consumer transaction was open on the broker (from its first produce, or from its end when it produced nothing, to the end's answer), by outcome: committed, aborted, failed. The broker aborts one open longer than -kafka.transaction-timeout."),
		metric.WithExplicitBucketBoundaries(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)); err != nil {
		return nil, fmt.Errorf("create transaction duration histogram: %w", err)
	}
	return &ins, nil
}

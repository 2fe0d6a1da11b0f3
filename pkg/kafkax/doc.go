// Package kafkax wraps franz-go with the delivery rules of docs/design.md.
//
// Producer: acks from all in-sync replicas, idempotent, small linger, keyed
// records partitioned by murmur2 like Kafka's Java client (same key, same
// partition), trace context injected into headers; Produce returns only once
// every record is acknowledged.
//
// Consumer: a consumer group with manual commits. Run polls and hands each
// partition's records in order to the Handler; with ConcurrentPartitions the
// partitions of one poll are handled concurrently, one goroutine each, so
// Handlers must be safe for concurrent use. A failing batch is retried with backoff forever (a down
// dependency stops consumption instead of dropping data); each partition is
// committed synchronously once its records are handled, and only after the
// whole poll is handled may a rebalance happen. Groups use the
// cooperative-sticky balancer: a rebalance only moves the partitions that
// change owner, the others keep flowing. On shutdown the in-flight batches
// are finished (bounded by Config.DrainTimeout) and committed before the
// consumer leaves the group.
//
// StartEmbedded runs franz-go's in-process kfake broker for tests and the demo.
package kafkax

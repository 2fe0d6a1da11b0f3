// Package kafkax wraps franz-go with the delivery rules of docs/design.md.
//
// Producer: acks from all in-sync replicas, idempotent, small linger, keyed
// records partitioned by murmur2 like Kafka's Java client (same key, same
// partition), trace context injected into headers; Produce returns only once
// every record is acknowledged.
//
// Consumer: a consumer group with manual commits. Run polls and hands the
// records to the Handler (by default the whole poll in one call, each
// partition's records in order). By default each poll is one Kafka
// transaction (KIP-447, franz-go's GroupTransactSession): the handler's
// Produce calls (with the handler's context) join it, the consumed offsets
// are committed in it, and it ends with a commit; a handler error aborts it
// and the records are fetched again after a backoff, forever (a down
// dependency stops consumption instead of dropping data); partitions
// revoked or lost before the end abort it and the records go to their next
// owner. Each consumer's transactional id is stable per instance and
// unique among live ones (Config.InstanceID): a restarted instance aborts
// its killed predecessor's open transaction as it starts, and an instance
// fenced by a live twin stops with an error. Consumers read read_committed and keep transaction markers out of
// the handler's records. With Config.AtLeastOnce (-kafka.transactions=false)
// the handler produces with the plain producer, each partition is committed
// synchronously once its records are handled, and only after the whole poll
// is handled may a rebalance happen. Groups use the cooperative-sticky
// balancer: a rebalance only moves the partitions that change owner, the
// others keep flowing. On shutdown the in-flight batches are finished
// (bounded by Config.DrainTimeout) and committed before the consumer leaves
// the group.
//
// StartEmbedded runs franz-go's in-process kfake broker for tests and the demo.
package kafkax

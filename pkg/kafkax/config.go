package kafkax

import (
	"errors"
	"flag"
	"fmt"
	"strconv"
	"time"

	"github.com/stockcast/stockcast/pkg/config"
)

// Config configures producers, consumers and topic creation.
type Config struct {
	Brokers           []string
	ClientID          string
	Partitions        int           // partitions of topics EnsureTopics creates
	ReplicationFactor int           // replication of topics EnsureTopics creates
	SessionTimeout    time.Duration // consumer group session timeout
	DrainTimeout      time.Duration // how long shutdown waits for the in-flight batch
	MaxPollRecords    int           // records one poll hands to the handlers, across partitions; zero means 10,000

	// BatchWait makes a gather linger: with BatchWait above zero the
	// consumer polls on (waiting for the broker) after a poll returned
	// records, until the batch holds BatchRecords records or BatchWait
	// has passed since that first poll: fewer, larger writes below
	// saturation (one handler call, one transaction or offset commit, one
	// insert per store: ClickHouse's cost is per insert, not per row,
	// docs/load.md) for up to BatchWait of latency per consuming stage
	// (flag -kafka.batch-wait, default 100ms). Zero is the adaptive
	// gather: the first poll that returns records plus whatever the client
	// has already fetched when it returns (non-blocking polls), up to
	// BatchRecords, never waiting for more; a stage then adds no latency
	// below saturation, and at saturation the fetches that arrive while
	// the handler runs make the next batch (docs/load.md "Session 7").
	BatchWait time.Duration

	// BatchRecords bounds a gathered batch (flag -kafka.batch-records,
	// default 10,000): the polls of a gather ask for at most the records
	// still missing, so a batch never holds more. Zero means MaxPollRecords.
	BatchRecords int

	// ConcurrentPartitions handles the partitions of a poll concurrently,
	// one goroutine each, instead of one after another. Off by default: it
	// was not faster end to end on 2 shared cores (docs/benchmarks.md).
	ConcurrentPartitions bool

	// PartitionAtATime hands the handler one partition's records per call,
	// as before session 3. By default (false) one call gets every record of
	// a poll, each partition's in offset order, so that a poll costs one
	// store round trip, one ClickHouse insert and one produce instead of one
	// per partition (docs/load.md). ConcurrentPartitions implies it.
	PartitionAtATime bool

	// RetryMin and RetryMax bound the backoff between attempts of a failing
	// batch; zero means 100ms and 5s.
	RetryMin, RetryMax time.Duration

	// AtLeastOnce turns transactions off (flag -kafka.transactions=false):
	// a consumer then produces its outputs with the plain idempotent producer
	// and commits offsets afterwards, so a batch handled again publishes its
	// outputs again. By default (false) each poll is one Kafka transaction:
	// the handler's outputs and the consumed offsets commit together or not
	// at all (docs/design.md, "Delivery"). Some clusters forbid transactions
	// (ACLs on transactional ids); they need this.
	AtLeastOnce bool

	// TransactionalIDPrefix starts the transactional id of every consumer
	// (default: its group). The id is <prefix>-<InstanceID>.
	TransactionalIDPrefix string

	// InstanceID names this instance in its consumers' transactional ids
	// (flag -kafka.instance-id): stable across restarts, so that a
	// restarted instance's first InitProducerID aborts the open transaction
	// of the predecessor it replaces at once (not after TransactionTimeout),
	// and unique among live instances, which would otherwise fence each
	// other. Empty: <host>-<n>, n the lowest slot no live process on this
	// host holds (a lock file); the Helm chart sets the pod name. Zombies
	// of a rebalance are fenced through the group generation (KIP-447), not
	// through the id.
	InstanceID string

	// instanceLockDir holds the instance locks (tests); empty means
	// $TMPDIR/stockcast-kafka-ids.
	instanceLockDir string

	// TransactionTimeout is how long the broker lets a transaction stay
	// open before it aborts it and fences the producer (flag
	// -kafka.transaction-timeout); zero means 60s, Kafka's producer
	// default. A transaction is open from the handler's first produce to
	// the end of the batch: on 2 cores at load 40-50 ingest's batches of
	// 10,000 records stayed open 11 s and 35 s (its handler after the
	// first produce: Redis, CPU), which the former 10 s default turned into
	// an exit (docs/load.md, "Session 8: transaction timeout"). The cost: an
	// instance killed mid-transaction and not restarted with the same
	// -kafka.instance-id holds back read_committed readers of the
	// partitions it wrote (and its group's offset fetches) until then; one
	// restarted with it aborts the transaction at once.
	TransactionTimeout time.Duration

	// rebalanceTimeout overrides kgo's 60s rebalance timeout (tests: how
	// soon a member that does not rejoin is removed from the group).
	rebalanceTimeout time.Duration
}

// defaultTransactionTimeout is the default of -kafka.transaction-timeout
// (Config.TransactionTimeout).
const defaultTransactionTimeout = 60 * time.Second

// transactionsFlag is -kafka.transactions, the negation of AtLeastOnce.
type transactionsFlag struct{ atLeastOnce *bool }

func (f transactionsFlag) String() string {
	if f.atLeastOnce == nil {
		return "true"
	}
	return strconv.FormatBool(!*f.atLeastOnce)
}

func (f transactionsFlag) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	*f.atLeastOnce = !v
	return nil
}

func (transactionsFlag) IsBoolFlag() bool { return true }

// RegisterFlags registers the -kafka.* flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	config.StringsVar(fs, &c.Brokers, "kafka.brokers", []string{"127.0.0.1:9092"}, "comma-separated Kafka bootstrap brokers")
	fs.StringVar(&c.ClientID, "kafka.client-id", "stockcast", "Kafka client id")
	fs.IntVar(&c.Partitions, "kafka.partitions", 6, "partitions of the topics stockcast creates")
	fs.IntVar(&c.ReplicationFactor, "kafka.replication-factor", 1, "replication factor of the topics stockcast creates")
	fs.DurationVar(&c.SessionTimeout, "kafka.session-timeout", 10*time.Second, "consumer group session timeout")
	fs.BoolVar(&c.ConcurrentPartitions, "kafka.concurrent-partitions", false, "handle the partitions of a poll concurrently (one goroutine each) instead of one after another")
	fs.BoolVar(&c.PartitionAtATime, "kafka.partition-at-a-time", false, "hand the handler one partition's records per call instead of every record of a poll in one call")
	fs.DurationVar(&c.BatchWait, "kafka.batch-wait", defaultBatchWait, "gather the records of several polls into one batch (one handler call, one transaction) for at most this long after the first poll returned records, waiting for more (fewer, larger writes for up to this much latency per stage); 0: the first poll's records plus those already fetched, never waiting")
	fs.IntVar(&c.BatchRecords, "kafka.batch-records", defaultMaxPollRecords, "at most this many records in one gathered batch (it is handed over as soon as it is full)")
	fs.DurationVar(&c.DrainTimeout, "kafka.drain-timeout", 30*time.Second, "on shutdown, how long to wait for the in-flight batch")
	fs.Var(transactionsFlag{&c.AtLeastOnce}, "kafka.transactions", "consume, produce and commit offsets in one Kafka transaction per poll (outputs once on their topics); false: at-least-once outputs, for clusters that forbid transactions")
	fs.StringVar(&c.TransactionalIDPrefix, "kafka.transactional-id-prefix", "", "prefix of the consumers' transactional ids, which are <prefix>-<instance id> (default: the consumer group)")
	fs.StringVar(&c.InstanceID, "kafka.instance-id", "", "this instance's name in its transactional ids: stable across restarts (a restart then aborts its predecessor's open transaction at once) and unique among live instances (default: <host>-<n>, n the lowest slot free on this host; Kubernetes: the pod name)")
	fs.DurationVar(&c.TransactionTimeout, "kafka.transaction-timeout", defaultTransactionTimeout, "how long the broker keeps a transaction open (from a batch's first produce to its commit) before aborting it and fencing the instance (a killed instance not restarted with its -kafka.instance-id holds back read_committed readers until then)")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("kafka brokers: none given"))
	}
	if c.Partitions < 1 {
		errs = append(errs, fmt.Errorf("kafka partitions %d: want at least 1", c.Partitions))
	}
	if c.ReplicationFactor < 1 {
		errs = append(errs, fmt.Errorf("kafka replication factor %d: want at least 1", c.ReplicationFactor))
	}
	if c.BatchRecords < 0 {
		errs = append(errs, fmt.Errorf("kafka batch records %d: must not be negative", c.BatchRecords))
	}
	if c.BatchWait < 0 {
		errs = append(errs, fmt.Errorf("kafka batch wait %s: must not be negative", c.BatchWait))
	}
	if c.MaxPollRecords < 0 {
		errs = append(errs, fmt.Errorf("kafka max poll records %d: must not be negative", c.MaxPollRecords))
	}
	if c.SessionTimeout < 0 || c.DrainTimeout < 0 || c.RetryMin < 0 || c.RetryMax < 0 || c.TransactionTimeout < 0 {
		errs = append(errs, errors.New("kafka timeouts: must not be negative"))
	}
	return errors.Join(errs...)
}

// withDefaults fills zero values, so that a Config built in code (tests)
// needs only Brokers.
func (c Config) withDefaults() Config {
	if c.ClientID == "" {
		c.ClientID = "stockcast"
	}
	if c.Partitions == 0 {
		c.Partitions = 6
	}
	if c.ReplicationFactor == 0 {
		c.ReplicationFactor = 1
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = 10 * time.Second
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = 30 * time.Second
	}
	if c.MaxPollRecords == 0 {
		c.MaxPollRecords = defaultMaxPollRecords
	}
	if c.BatchRecords == 0 {
		c.BatchRecords = c.MaxPollRecords
	}
	if c.RetryMin == 0 {
		c.RetryMin = 100 * time.Millisecond
	}
	if c.RetryMax == 0 {
		c.RetryMax = 5 * time.Second
	}
	if c.TransactionTimeout == 0 {
		c.TransactionTimeout = defaultTransactionTimeout
	}
	return c
}

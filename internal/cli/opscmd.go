package cli

// Operator commands used by docs/operations.md and the Helm chart's topic
// Job: `topics create`, `dlq redrive` and `offsets reset`.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockcast/stockcast/pkg/kafkax"
	"github.com/stockcast/stockcast/pkg/topics"
)

// RedriveGroup is the consumer group whose committed offsets on a DLQ
// topic mark the records already re-driven.
const RedriveGroup = "stockcast-dlq-redrive"

// HeaderRedriven is set on a re-driven record: the DLQ position it came from.
const HeaderRedriven = "stockcast-redriven-from"

// consumedTopics are the topics some stockcast service consumes (each
// has a dead-letter topic).
var consumedTopics = []string{topics.Orders, topics.Inventory, topics.Catalog, topics.Demand, topics.Features, topics.Forecasts}

// AllTopics is every topic stockcast uses: the pipeline topics and the
// dead-letter topic of each consumed one.
func AllTopics() []string {
	ts := []string{topics.Orders, topics.Inventory, topics.Catalog, topics.Demand, topics.Features, topics.Forecasts, topics.Proposals, topics.Stockouts, topics.Alerts}
	for _, t := range consumedTopics {
		ts = append(ts, topics.DLQ(t))
	}
	return ts
}

// subcommand picks the verb of a two-word command (`dlq redrive`).
func subcommand(name string, args []string, verbs map[string]func([]string) error) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		names := make([]string, 0, len(verbs))
		for v := range verbs {
			names = append(names, v)
		}
		sort.Strings(names)
		return fmt.Errorf("%s: want a subcommand: %s", name, strings.Join(names, ", "))
	}
	run, ok := verbs[args[0]]
	if !ok {
		return fmt.Errorf("%s: unknown subcommand %q", name, args[0])
	}
	return run(args[1:])
}

func adminClient(cfg kafkax.Config) (*kgo.Client, *kadm.Client, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...), kgo.ClientID(cfg.ClientID))
	if err != nil {
		return nil, nil, fmt.Errorf("create kafka client for %v: %w", cfg.Brokers, err)
	}
	return cl, kadm.NewClient(cl), nil
}

// fetchCommitted returns group's committed offsets on topics; a group that
// never committed has none.
func fetchCommitted(ctx context.Context, adm *kadm.Client, group string, topics ...string) (kadm.OffsetResponses, error) {
	os, err := adm.FetchOffsetsForTopics(ctx, group, topics...)
	if err == nil {
		err = os.Error()
	}
	if errors.Is(err, kerr.GroupIDNotFound) {
		return kadm.OffsetResponses{}, nil
	}
	return os, err
}

// ---- topics create ----

func runTopics(ctx context.Context, e *env, args []string) error {
	return subcommand("topics", args, map[string]func([]string) error{
		"create": func(args []string) error { return runTopicsCreate(ctx, e, args) },
	})
}

func runTopicsCreate(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("topics create", flag.ContinueOnError)
	var kcfg kafkax.Config
	kcfg.RegisterFlags(fs)
	timeout := fs.Duration("timeout", 2*time.Minute, "how long to wait for the brokers")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	if err := kcfg.Validate(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	ts := AllTopics()
	if err := kafkax.EnsureTopics(ctx, kcfg, ts...); err != nil {
		return err
	}
	for _, t := range ts {
		fmt.Fprintln(e.stdout, t)
	}
	return nil
}

// ---- dlq redrive ----

func runDLQ(ctx context.Context, e *env, args []string) error {
	return subcommand("dlq", args, map[string]func([]string) error{
		"redrive": func(args []string) error { return runRedrive(ctx, e, args) },
	})
}

// RedriveOptions configures Redrive.
type RedriveOptions struct {
	Topic  string // the dead-letter topic, e.g. orders.v1.dlq
	Reason string // when set, only records with this stockcast-dlq-reason
	Max    int    // when positive, stop after this many re-driven records
	DryRun bool   // count and print, produce and commit nothing
}

// RedriveResult counts what Redrive did.
type RedriveResult struct {
	Read, Redriven, Skipped int
	ByReason                map[string]int
}

func runRedrive(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("dlq redrive", flag.ContinueOnError)
	var kcfg kafkax.Config
	kcfg.RegisterFlags(fs)
	var o RedriveOptions
	fs.StringVar(&o.Topic, "topic", "", "dead-letter topic to re-drive (e.g. "+topics.DLQ(topics.Orders)+")")
	fs.StringVar(&o.Reason, "reason", "", "re-drive only records with this DLQ reason (default: all)")
	fs.IntVar(&o.Max, "max", 0, "stop after this many records (0: all)")
	fs.BoolVar(&o.DryRun, "dry-run", false, "print what would be re-driven; produce and commit nothing")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	if err := kcfg.Validate(); err != nil {
		return err
	}
	res, err := Redrive(ctx, kcfg, o)
	if err != nil {
		return err
	}
	verb := "redriven"
	if o.DryRun {
		verb = "would redrive"
	}
	fmt.Fprintf(e.stdout, "%s: read %d, %s %d, skipped %d\n", o.Topic, res.Read, verb, res.Redriven, res.Skipped)
	reasons := make([]string, 0, len(res.ByReason))
	for r := range res.ByReason {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	for _, r := range reasons {
		fmt.Fprintf(e.stdout, "  reason %-24s %d\n", r, res.ByReason[r])
	}
	return nil
}

// Redrive produces the records of a dead-letter topic back to the topic
// they came from, with the DLQ headers removed and HeaderRedriven set. It
// starts at RedriveGroup's committed offsets (the beginning the first
// time), stops at the end offsets seen when it started (records that fail
// again land after them), and commits what it read, so that running it
// twice re-drives nothing twice. Records the filter skips are committed too.
func Redrive(ctx context.Context, cfg kafkax.Config, o RedriveOptions) (RedriveResult, error) {
	res := RedriveResult{ByReason: map[string]int{}}
	if !topics.IsDLQ(o.Topic) {
		return res, fmt.Errorf("dlq redrive: topic %q is not a dead-letter topic (*.dlq)", o.Topic)
	}
	target := strings.TrimSuffix(o.Topic, ".dlq")
	cl, adm, err := adminClient(cfg)
	if err != nil {
		return res, err
	}
	defer cl.Close()

	starts, err := adm.ListStartOffsets(ctx, o.Topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return res, fmt.Errorf("list start offsets of %s: %w", o.Topic, err)
	}
	ends, err := adm.ListEndOffsets(ctx, o.Topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return res, fmt.Errorf("list end offsets of %s: %w", o.Topic, err)
	}
	committed, err := fetchCommitted(ctx, adm, RedriveGroup, o.Topic)
	if err != nil {
		return res, fmt.Errorf("fetch offsets of group %s: %w", RedriveGroup, err)
	}

	from := map[int32]kgo.Offset{}
	stop := map[int32]int64{} // exclusive
	starts.Each(func(s kadm.ListedOffset) {
		at := s.Offset
		if c, ok := committed.Lookup(o.Topic, s.Partition); ok && c.At > at {
			at = c.At
		}
		end, _ := ends.Lookup(o.Topic, s.Partition)
		if at < end.Offset {
			from[s.Partition] = kgo.NewOffset().At(at)
			stop[s.Partition] = end.Offset
		}
	})
	if len(from) == 0 {
		return res, nil
	}

	// read_committed (dead letters are written in the consumers'
	// transactions); markers come back as records to see the end passed.
	rd, err := kgo.NewClient(append(kafkax.ReadToEnd(), kgo.SeedBrokers(cfg.Brokers...), kgo.ClientID(cfg.ClientID),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{o.Topic: from}),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(5*time.Millisecond))...)
	if err != nil {
		return res, fmt.Errorf("create kafka client: %w", err)
	}
	defer rd.Close()

	next := map[int32]int64{}
	done := func() bool {
		if o.Max > 0 && res.Redriven >= o.Max {
			return true
		}
		for p, end := range stop {
			if next[p] < end {
				return false
			}
		}
		return true
	}
	for !done() {
		fetches := rd.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("read %s: %w", o.Topic, err)
		}
		var ferr error
		fetches.EachError(func(t string, p int32, err error) {
			ferr = errors.Join(ferr, fmt.Errorf("fetch %s/%d: %w", t, p, err))
		})
		if ferr != nil {
			return res, ferr
		}
		var out []*kgo.Record
		fetches.EachRecord(func(r *kgo.Record) {
			if done() || (o.Max > 0 && res.Redriven+len(out) >= o.Max) {
				return
			}
			if r.Offset >= stop[r.Partition] {
				// Past the end (the end was a record of an aborted
				// transaction, which read_committed skips): done.
				next[r.Partition] = max(next[r.Partition], stop[r.Partition])
				return
			}
			next[r.Partition] = r.Offset + 1
			if kafkax.IsControl(r) {
				return
			}
			res.Read++
			reason := kafkax.HeaderValue(r, topics.HeaderDLQReason)
			if o.Reason != "" && reason != o.Reason {
				res.Skipped++
				return
			}
			res.ByReason[reason]++
			out = append(out, redriven(r, target))
		})
		res.Redriven += len(out)
		if !o.DryRun && len(out) > 0 {
			if err := rd.ProduceSync(ctx, out...).FirstErr(); err != nil {
				return res, fmt.Errorf("produce to %s: %w", target, err)
			}
		}
	}
	if o.DryRun {
		return res, nil
	}
	commit := kadm.Offsets{}
	for p, n := range next {
		commit.Add(kadm.Offset{Topic: o.Topic, Partition: p, At: n, LeaderEpoch: -1})
	}
	if err := adm.CommitAllOffsets(ctx, RedriveGroup, commit); err != nil {
		return res, fmt.Errorf("commit re-driven offsets of %s: %w", o.Topic, err)
	}
	return res, nil
}

// redriven is the record to produce back: same key, value and headers, on
// target, without the DLQ headers, marked with where it came from.
func redriven(r *kgo.Record, target string) *kgo.Record {
	out := &kgo.Record{Topic: target, Key: r.Key, Value: r.Value}
	for _, h := range r.Headers {
		switch strings.ToLower(h.Key) {
		case topics.HeaderDLQReason, topics.HeaderDLQDetail, topics.HeaderDLQSource, topics.HeaderDLQService, HeaderRedriven:
			continue
		}
		out.Headers = append(out.Headers, h)
	}
	kafkax.SetHeader(out, HeaderRedriven, r.Topic+"/"+strconv.Itoa(int(r.Partition))+"/"+strconv.FormatInt(r.Offset, 10))
	return out
}

// ---- offsets reset ----

func runOffsets(ctx context.Context, e *env, args []string) error {
	return subcommand("offsets", args, map[string]func([]string) error{
		"reset": func(args []string) error { return runOffsetsReset(ctx, e, args) },
	})
}

// ResetOptions configures ResetOffsets. Exactly one of ToTime, ToEarliest
// and ToLatest is set.
type ResetOptions struct {
	Group                string
	Topics               []string
	ToTime               time.Time
	ToEarliest, ToLatest bool
	Execute              bool // false: only compute and return the plan
}

// ResetPlan is one partition's move.
type ResetPlan struct {
	Topic     string
	Partition int32
	From, To  int64 // From is -1 when the group had no committed offset
}

func runOffsetsReset(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("offsets reset", flag.ContinueOnError)
	var kcfg kafkax.Config
	kcfg.RegisterFlags(fs)
	var o ResetOptions
	var topicList, toTime string
	fs.StringVar(&o.Group, "group", "", "consumer group (e.g. stockcast-feature)")
	fs.StringVar(&topicList, "topic", "", "comma-separated topics of the group to move (e.g. demand.v1)")
	fs.StringVar(&toTime, "to-time", "", "move to the first record at or after this time (RFC 3339)")
	fs.BoolVar(&o.ToEarliest, "to-earliest", false, "move to the oldest retained record")
	fs.BoolVar(&o.ToLatest, "to-latest", false, "move to the end (skip everything not yet consumed)")
	fs.BoolVar(&o.Execute, "execute", false, "commit the new offsets (default: print the plan only)")
	if err := e.parse(fs, args); err != nil {
		return err
	}
	if err := kcfg.Validate(); err != nil {
		return err
	}
	if topicList != "" {
		o.Topics = strings.Split(topicList, ",")
	}
	if toTime != "" {
		t, err := time.Parse(time.RFC3339, toTime)
		if err != nil {
			return fmt.Errorf("offsets reset: --to-time: %w", err)
		}
		o.ToTime = t
	}
	plan, err := ResetOffsets(ctx, kcfg, o)
	if err != nil {
		return err
	}
	for _, p := range plan {
		fmt.Fprintf(e.stdout, "%s %s/%d %d -> %d\n", o.Group, p.Topic, p.Partition, p.From, p.To)
	}
	if o.Execute {
		fmt.Fprintf(e.stdout, "committed %d partitions\n", len(plan))
	} else {
		fmt.Fprintln(e.stdout, "dry run: add --execute to commit")
	}
	return nil
}

// ResetOffsets moves a stopped consumer group's committed offsets. It
// refuses while the group has members: a running consumer would overwrite
// the new offsets with its own commits.
func ResetOffsets(ctx context.Context, cfg kafkax.Config, o ResetOptions) ([]ResetPlan, error) {
	targets := 0
	for _, set := range []bool{!o.ToTime.IsZero(), o.ToEarliest, o.ToLatest} {
		if set {
			targets++
		}
	}
	switch {
	case o.Group == "":
		return nil, errors.New("offsets reset: --group is required")
	case len(o.Topics) == 0:
		return nil, errors.New("offsets reset: --topic is required")
	case targets != 1:
		return nil, errors.New("offsets reset: give exactly one of --to-time, --to-earliest, --to-latest")
	}
	cl, adm, err := adminClient(cfg)
	if err != nil {
		return nil, err
	}
	defer cl.Close()

	groups, err := adm.DescribeGroups(ctx, o.Group)
	if err == nil {
		err = groups.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("describe group %s: %w", o.Group, err)
	}
	if g, ok := groups[o.Group]; ok && len(g.Members) > 0 {
		return nil, fmt.Errorf("offsets reset: group %s has %d active members (state %s): scale its consumers to zero first",
			o.Group, len(g.Members), g.State)
	}

	var listed kadm.ListedOffsets
	switch {
	case o.ToEarliest:
		listed, err = adm.ListStartOffsets(ctx, o.Topics...)
	case o.ToLatest:
		listed, err = adm.ListEndOffsets(ctx, o.Topics...)
	default:
		listed, err = adm.ListOffsetsAfterMilli(ctx, o.ToTime.UnixMilli(), o.Topics...)
	}
	if err == nil {
		err = listed.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("list offsets of %v: %w", o.Topics, err)
	}
	current, err := fetchCommitted(ctx, adm, o.Group, o.Topics...)
	if err != nil {
		return nil, fmt.Errorf("fetch offsets of group %s: %w", o.Group, err)
	}

	var plan []ResetPlan
	commit := kadm.Offsets{}
	listed.Each(func(l kadm.ListedOffset) {
		from := int64(-1)
		if c, ok := current.Lookup(l.Topic, l.Partition); ok {
			from = c.At
		}
		plan = append(plan, ResetPlan{Topic: l.Topic, Partition: l.Partition, From: from, To: l.Offset})
		commit.Add(kadm.Offset{Topic: l.Topic, Partition: l.Partition, At: l.Offset, LeaderEpoch: -1})
	})
	sort.Slice(plan, func(i, j int) bool {
		if plan[i].Topic != plan[j].Topic {
			return plan[i].Topic < plan[j].Topic
		}
		return plan[i].Partition < plan[j].Partition
	})
	if len(plan) == 0 {
		return nil, fmt.Errorf("offsets reset: no partitions found for %v", o.Topics)
	}
	if o.Execute {
		if err := adm.CommitAllOffsets(ctx, o.Group, commit); err != nil {
			return nil, fmt.Errorf("commit offsets of group %s: %w", o.Group, err)
		}
	}
	return plan, nil
}

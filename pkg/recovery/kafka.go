package recovery

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockcast/stockcast/pkg/kafkax"
)

// Offsets are per-partition offsets of one topic.
type Offsets map[int32]int64

// Committed returns the group's committed offsets on topic (partitions
// without a commit are absent).
func Committed(ctx context.Context, cfg kafkax.Config, group, topic string) (Offsets, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...), kgo.ClientID(cfg.ClientID))
	if err != nil {
		return nil, fmt.Errorf("create kafka client: %w", err)
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).FetchOffsets(ctx, group)
	if err != nil {
		return nil, fmt.Errorf("fetch offsets of group %s: %w", group, err)
	}
	out := Offsets{}
	var ferr error
	resp.Each(func(o kadm.OffsetResponse) {
		if o.Err != nil {
			ferr = fmt.Errorf("offset of group %s on %s/%d: %w", group, o.Topic, o.Partition, o.Err)
			return
		}
		if o.Topic == topic && o.At >= 0 {
			out[o.Partition] = o.At
		}
	})
	return out, ferr
}

// Ends returns the end offsets (high watermarks) of topic.
func Ends(ctx context.Context, cfg kafkax.Config, topic string) (Offsets, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...), kgo.ClientID(cfg.ClientID))
	if err != nil {
		return nil, fmt.Errorf("create kafka client: %w", err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("list end offsets of %s: %w", topic, err)
	}
	out := Offsets{}
	var lerr error
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			lerr = fmt.Errorf("end offset of %s/%d: %w", o.Topic, o.Partition, o.Err)
			return
		}
		out[o.Partition] = o.Offset
	})
	return out, lerr
}

// Read calls fn with the records of topic in [from, to) of each partition
// in to (from the log start where from has none), in offset order per
// partition, one partition per call. It returns how many records it read.
func Read(ctx context.Context, cfg kafkax.Config, topic string, from, to Offsets, batch int, fn func(recs []*kgo.Record) error) (int, error) {
	adm, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...), kgo.ClientID(cfg.ClientID))
	if err != nil {
		return 0, fmt.Errorf("create kafka client: %w", err)
	}
	logStarts, err := kadm.NewClient(adm).ListStartOffsets(ctx, topic)
	adm.Close()
	if err != nil {
		return 0, fmt.Errorf("list start offsets of %s: %w", topic, err)
	}
	starts := map[int32]kgo.Offset{}
	for p, end := range to {
		f, ok := from[p]
		if ls, lok := logStarts.Lookup(topic, p); lok && ls.Err == nil && (!ok || f < ls.Offset) {
			f, ok = ls.Offset, true // retention removed the beginning
		}
		if !ok {
			f = 0
		}
		if f < end {
			starts[p] = kgo.NewOffset().At(f)
		}
	}
	if len(starts) == 0 {
		return 0, nil
	}
	// read_committed; transaction markers come back as records so that a
	// partition whose last offsets are markers is seen to reach its end.
	cl, err := kgo.NewClient(append(kafkax.ReadToEnd(), kgo.SeedBrokers(cfg.Brokers...), kgo.ClientID(cfg.ClientID),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: starts}))...)
	if err != nil {
		return 0, fmt.Errorf("create kafka client: %w", err)
	}
	defer cl.Close()
	n := 0
	for len(starts) > 0 {
		fetches := cl.PollRecords(ctx, batch)
		if err := ctx.Err(); err != nil {
			return n, err
		}
		var ferr error
		fetches.EachError(func(t string, p int32, err error) { ferr = fmt.Errorf("read %s/%d: %w", t, p, err) })
		if ferr != nil {
			return n, ferr
		}
		var cerr error
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			if _, ok := starts[fp.Partition]; cerr != nil || !ok || len(fp.Records) == 0 {
				return
			}
			end := to[fp.Partition]
			recs := make([]*kgo.Record, 0, len(fp.Records))
			for _, r := range fp.Records {
				if r.Offset >= end {
					break
				}
				if !kafkax.IsControl(r) {
					recs = append(recs, r)
				}
			}
			if len(recs) > 0 {
				n += len(recs)
				cerr = fn(recs)
			}
			if last := fp.Records[len(fp.Records)-1]; last.Offset >= end-1 {
				delete(starts, fp.Partition)
				cl.PauseFetchPartitions(map[string][]int32{topic: {fp.Partition}})
			}
		})
		if cerr != nil {
			return n, cerr
		}
	}
	return n, nil
}

// NoCommits is a fresh check (Recoverer.WithFresh): the group has
// committed no offset on topic, so it applied nothing.
func NoCommits(cfg kafkax.Config, group, topic string) HasData {
	return func(ctx context.Context) (bool, error) {
		committed, err := Committed(ctx, cfg, group, topic)
		return len(committed) == 0, err
	}
}

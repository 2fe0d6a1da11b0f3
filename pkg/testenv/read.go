package testenv

import (
	"context"
	"maps"
	"sort"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ReadTopics returns every committed record of topicNames from their start
// up to their end offsets at the call, ordered by topic, partition and
// offset. It reads until it has seen each partition's last offset (the
// commit markers of transactional outputs included), however the broker
// splits its fetches: never "whatever arrives within a few seconds". It
// fails the test if that takes longer than a minute.
func ReadTopics(t testing.TB, brokers []string, topicNames ...string) []*kgo.Record {
	t.Helper()
	admCl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer admCl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ends, err := kadm.NewClient(admCl).ListEndOffsets(ctx, topicNames...)
	if err != nil || ends.Error() != nil {
		t.Fatalf("list end offsets of %v: %v %v", topicNames, err, ends.Error())
	}
	type tp struct {
		topic     string
		partition int32
	}
	want := map[tp]int64{}
	start := map[string]map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[tp{o.Topic, o.Partition}] = o.Offset
			if start[o.Topic] == nil {
				start[o.Topic] = map[int32]kgo.Offset{}
			}
			start[o.Topic][o.Partition] = kgo.NewOffset().AtStart()
		}
	})
	if len(want) == 0 {
		return nil
	}
	// Outputs are written in transactions: read committed records only,
	// and the markers too (skipped), which take offsets up to the end.
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumePartitions(start),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	left := maps.Clone(want)
	for len(left) > 0 {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %v: %v; %d partitions not read to their end", topicNames, ctx.Err(), len(left))
		}
		fetches.EachRecord(func(r *kgo.Record) {
			k := tp{r.Topic, r.Partition}
			if r.Offset >= want[k]-1 {
				delete(left, k)
			}
			if r.Offset < want[k] && !r.Attrs.IsControl() {
				out = append(out, r)
			}
		})
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Topic != b.Topic {
			return a.Topic < b.Topic
		}
		if a.Partition != b.Partition {
			return a.Partition < b.Partition
		}
		return a.Offset < b.Offset
	})
	return out
}

package kafkax

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ensureTopicsTimeout bounds EnsureTopics when ctx has no deadline.
const ensureTopicsTimeout = 30 * time.Second

// EnsureTopics creates the topics that do not exist yet, with cfg.Partitions
// partitions and cfg.ReplicationFactor replicas, and waits until the
// metadata shows every topic with a leader for each partition. Existing
// topics are left as they are.
func EnsureTopics(ctx context.Context, cfg Config, topics ...string) error {
	if len(topics) == 0 {
		return nil
	}
	cfg = cfg.withDefaults()
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, ensureTopicsTimeout)
		defer cancel()
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...), kgo.ClientID(cfg.ClientID))
	if err != nil {
		return fmt.Errorf("create kafka admin client for %v: %w", cfg.Brokers, err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	for {
		resp, err := adm.CreateTopics(ctx, int32(cfg.Partitions), int16(cfg.ReplicationFactor), nil, topics...)
		if err == nil {
			var errs []error
			for _, r := range resp.Sorted() {
				if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
					errs = append(errs, fmt.Errorf("create topic %s: %w (%s)", r.Topic, r.Err, r.ErrMessage))
				}
			}
			if len(errs) > 0 {
				return errors.Join(errs...)
			}
			break
		}
		// The broker may not be reachable yet (starting up): retry until the deadline.
		if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
			return fmt.Errorf("create topics %v on %v: %w", topics, cfg.Brokers, errors.Join(err, ctx.Err()))
		}
	}

	for {
		md, err := adm.Metadata(ctx, topics...)
		if err == nil && topicsReady(md.Topics, topics) {
			return nil
		}
		if serr := sleepCtx(ctx, 50*time.Millisecond); serr != nil {
			return fmt.Errorf("wait for topics %v in metadata: %w", topics, errors.Join(err, serr))
		}
	}
}

func topicsReady(details kadm.TopicDetails, topics []string) bool {
	for _, t := range topics {
		d, ok := details[t]
		if !ok || d.Err != nil || len(d.Partitions) == 0 {
			return false
		}
		for _, p := range d.Partitions {
			if p.Err != nil || p.Leader < 0 {
				return false
			}
		}
	}
	return true
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

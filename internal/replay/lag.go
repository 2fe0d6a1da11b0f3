package replay

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/stockcast/stockcast/pkg/topics"
)

// Stage is one consumer group of the pipeline and the topics it consumes.
type Stage struct {
	Group  string
	Topics []string
}

// Pipeline returns the stages in data-flow order (docs/design.md, "Consumer
// groups").
func Pipeline() []Stage {
	return []Stage{
		{Group: "stockcast-ingest", Topics: []string{topics.Orders, topics.Inventory, topics.Catalog}},
		{Group: "stockcast-feature", Topics: []string{topics.Demand}},
		{Group: "stockcast-forecast", Topics: []string{topics.Features}},
		{Group: "stockcast-replenishment", Topics: []string{topics.Forecasts}},
	}
}

// StageLag is the lag of one stage: records of its topics not yet committed
// by its group.
type StageLag struct {
	Group string
	Lag   int64
}

// PipelineLag measures the lag of every stage, one after the other in
// data-flow order, and stops at the first stage that lags. Because a stage
// commits only after its outputs are acknowledged and each stage's end
// offsets are listed after the previous stage was seen at zero, all stages
// at zero means every input has gone all the way through.
func PipelineLag(ctx context.Context, adm *kadm.Client, stages []Stage) ([]StageLag, error) {
	out := make([]StageLag, 0, len(stages))
	for _, s := range stages {
		lag, err := groupLag(ctx, adm, s)
		if err != nil {
			return out, err
		}
		out = append(out, StageLag{Group: s.Group, Lag: lag})
		if lag > 0 {
			break
		}
	}
	return out, nil
}

// Drained reports whether every stage was measured at zero lag.
func Drained(lags []StageLag, stages []Stage) bool {
	if len(lags) != len(stages) {
		return false
	}
	for _, l := range lags {
		if l.Lag != 0 {
			return false
		}
	}
	return true
}

// groupLag sums, over the partitions of the stage's topics, the end offset
// minus the group's committed offset (the log start when nothing is
// committed: a group that has not started lags by everything).
func groupLag(ctx context.Context, adm *kadm.Client, s Stage) (int64, error) {
	committed, err := adm.FetchOffsets(ctx, s.Group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		committed, err = nil, nil // the group has not started: nothing committed
	}
	if err != nil {
		return 0, fmt.Errorf("fetch committed offsets of group %s: %w", s.Group, err)
	}
	ends, err := endOffsets(ctx, adm, s.Topics...)
	if err != nil {
		return 0, fmt.Errorf("lag of group %s: %w", s.Group, err)
	}
	starts, err := adm.ListStartOffsets(ctx, s.Topics...)
	if err != nil {
		return 0, fmt.Errorf("list start offsets of %v: %w", s.Topics, err)
	}
	var lag int64
	for t, ps := range ends {
		for p, end := range ps {
			from := int64(0)
			if o, ok := starts.Lookup(t, p); ok && o.Err == nil {
				from = o.Offset
			}
			if c, ok := committed.Lookup(t, p); ok && c.Err == nil && c.At >= 0 {
				from = c.At
			}
			lag += max(0, end-from)
		}
	}
	return lag, nil
}

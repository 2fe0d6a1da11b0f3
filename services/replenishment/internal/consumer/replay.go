package consumer

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockcast/stockcast/services/replenishment/internal/planning"
)

// Replay applies forecasts.v1 records to the state silently, for the
// recovery after a Redis loss (pkg/recovery): the planner applies them as
// Handle would, but nothing is saved to ClickHouse or published, because
// all of it was when the records were first handled. Records Handle would
// dead-letter are skipped. It returns how many events it applied.
func Replay(ctx context.Context, planner Planner, recs []*kgo.Record) (int, error) {
	events := make([]planning.Event, 0, len(recs))
	start := batchStarts(recs)
	var scratch []byte
	for _, r := range recs {
		ev, err := decode(r, start, &scratch)
		if err != nil {
			continue
		}
		events = append(events, ev)
	}
	if _, err := planner.Plan(ctx, events); err != nil {
		return 0, fmt.Errorf("replay %d events: %w", len(events), err)
	}
	return len(events), nil
}

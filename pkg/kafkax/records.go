package kafkax

import (
	"context"
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockcast/stockcast/pkg/telemetry"
	"github.com/stockcast/stockcast/pkg/topics"
)

// HeaderValue returns the value of the last header named key (compared
// case-insensitively, so "Content-Type" from a foreign producer matches),
// or "" when there is none.
func HeaderValue(r *kgo.Record, key string) string {
	for i := len(r.Headers) - 1; i >= 0; i-- {
		if strings.EqualFold(r.Headers[i].Key, key) {
			return string(r.Headers[i].Value)
		}
	}
	return ""
}

// SetHeader replaces every header named key (case-insensitively) by one
// with value.
func SetHeader(r *kgo.Record, key, value string) {
	kept := r.Headers[:0]
	for _, h := range r.Headers {
		if !strings.EqualFold(h.Key, key) {
			kept = append(kept, h)
		}
	}
	r.Headers = append(kept, kgo.RecordHeader{Key: key, Value: []byte(value)})
}

// DLQRecord builds the dead-letter record of src: same key, value and
// headers, on topics.DLQ(src.Topic), plus the reason, detail, source
// (topic/partition/offset) and rejecting service headers.
func DLQRecord(src *kgo.Record, service, reason, detail string) *kgo.Record {
	r := &kgo.Record{
		Topic:   topics.DLQ(src.Topic),
		Key:     src.Key,
		Value:   src.Value,
		Headers: append([]kgo.RecordHeader(nil), src.Headers...),
	}
	SetHeader(r, topics.HeaderDLQReason, reason)
	SetHeader(r, topics.HeaderDLQDetail, detail)
	SetHeader(r, topics.HeaderDLQSource, fmt.Sprintf("%s/%d/%d", src.Topic, src.Partition, src.Offset))
	SetHeader(r, topics.HeaderDLQService, service)
	return r
}

// ExtractTrace returns ctx carrying the remote span context found in r's
// headers (traceparent), so that spans started from it join the producer's trace.
func ExtractTrace(ctx context.Context, tel *telemetry.Telemetry, r *kgo.Record) context.Context {
	return tel.Propagator.Extract(ctx, headerCarrier{r})
}

// injectTrace writes the span context of ctx into r's headers.
func injectTrace(ctx context.Context, tel *telemetry.Telemetry, r *kgo.Record) {
	tel.Propagator.Inject(ctx, headerCarrier{r})
}

// headerCarrier adapts record headers to propagation.TextMapCarrier.
type headerCarrier struct{ r *kgo.Record }

func (c headerCarrier) Get(key string) string { return HeaderValue(c.r, key) }
func (c headerCarrier) Set(key, value string) { SetHeader(c.r, key, value) }
func (c headerCarrier) Keys() []string {
	keys := make([]string, 0, len(c.r.Headers))
	for _, h := range c.r.Headers {
		keys = append(keys, h.Key)
	}
	return keys
}

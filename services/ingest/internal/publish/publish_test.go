package publish

import (
	"bytes"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockcast/stockcast/pkg/kafkax"
	"github.com/stockcast/stockcast/pkg/topics"
	"github.com/stockcast/stockcast/services/ingest/internal/events"
)

func TestCapDLQ(t *testing.T) {
	big := bytes.Repeat([]byte("v"), events.MaxEventBytes+10)
	tests := []struct {
		name               string
		src                *kgo.Record
		wantValue, wantKey int
		wantHeaders        []string // keys, in order
		wantTruncated      string
	}{
		{"small record unchanged", &kgo.Record{Topic: topics.Orders, Key: []byte("k"), Value: []byte("v"),
			Headers: []kgo.RecordHeader{{Key: "content-type", Value: []byte("application/json")}}},
			1, 1, []string{"content-type", topics.HeaderDLQReason, topics.HeaderDLQDetail, topics.HeaderDLQSource, topics.HeaderDLQService}, ""},
		{"value exactly at the limit unchanged", &kgo.Record{Topic: topics.Orders, Value: big[:events.MaxEventBytes]},
			events.MaxEventBytes, 0, []string{topics.HeaderDLQReason, topics.HeaderDLQDetail, topics.HeaderDLQSource, topics.HeaderDLQService}, ""},
		{"value and key cut", &kgo.Record{Topic: topics.Orders, Key: big, Value: big},
			events.MaxEventBytes, events.MaxEventBytes,
			[]string{topics.HeaderDLQReason, topics.HeaderDLQDetail, topics.HeaderDLQSource, topics.HeaderDLQService, HeaderDLQTruncated},
			"value=65546 key=65546"},
		{"huge headers dropped, ours kept", &kgo.Record{Topic: topics.Orders, Value: []byte("v"),
			Headers: []kgo.RecordHeader{{Key: "a", Value: big}, {Key: "b", Value: []byte("x")}}},
			1, 0, []string{topics.HeaderDLQReason, topics.HeaderDLQDetail, topics.HeaderDLQSource, topics.HeaderDLQService, HeaderDLQTruncated},
			"headers=65549"}, // 1+65546 for a, 1+1 for b
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := kafkax.DLQRecord(tt.src, ServiceName, "event_too_large", "detail")
			capDLQ(r)
			var keys []string
			for _, h := range r.Headers {
				keys = append(keys, h.Key)
			}
			if len(r.Value) != tt.wantValue || len(r.Key) != tt.wantKey || strings.Join(keys, ",") != strings.Join(tt.wantHeaders, ",") ||
				kafkax.HeaderValue(r, HeaderDLQTruncated) != tt.wantTruncated {
				t.Fatalf("value %d key %d headers %v truncated %q; want %d %d %v %q", len(r.Value), len(r.Key), keys,
					kafkax.HeaderValue(r, HeaderDLQTruncated), tt.wantValue, tt.wantKey, tt.wantHeaders, tt.wantTruncated)
			}
			if !bytes.Equal(r.Value, tt.src.Value[:len(r.Value)]) || kafkax.HeaderValue(r, topics.HeaderDLQReason) != "event_too_large" {
				t.Fatalf("the cut value is not the original's prefix, or the reason is lost")
			}
		})
	}
}

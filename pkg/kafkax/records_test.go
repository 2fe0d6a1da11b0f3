package kafkax

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockcast/stockcast/pkg/topics"
)

func TestDLQRecord(t *testing.T) {
	src := &kgo.Record{
		Topic: topics.Orders, Partition: 4, Offset: 17,
		Key: []byte("85123A|online"), Value: []byte{0x0a, 0x01},
		Headers: []kgo.RecordHeader{
			{Key: topics.HeaderEventID, Value: []byte("or-1")},
			{Key: topics.HeaderDLQReason, Value: []byte("stale")},
		},
	}
	got := DLQRecord(src, "ingest", "quantity_not_positive", "quantity is 0")
	if got.Topic != "orders.v1.dlq" || string(got.Key) != string(src.Key) || string(got.Value) != string(src.Value) {
		t.Fatalf("DLQ record = %s %q %q", got.Topic, got.Key, got.Value)
	}
	want := map[string]string{
		topics.HeaderEventID:    "or-1",
		topics.HeaderDLQReason:  "quantity_not_positive",
		topics.HeaderDLQDetail:  "quantity is 0",
		topics.HeaderDLQSource:  "orders.v1/4/17",
		topics.HeaderDLQService: "ingest",
	}
	if len(got.Headers) != len(want) {
		t.Fatalf("headers = %v, want one per key of %v", got.Headers, want)
	}
	for k, v := range want {
		if hv := HeaderValue(got, k); hv != v {
			t.Errorf("header %s = %q, want %q", k, hv, v)
		}
	}
	if HeaderValue(src, topics.HeaderDLQReason) != "stale" || len(src.Headers) != 2 {
		t.Fatalf("DLQRecord modified the source headers: %v", src.Headers)
	}
}

func TestHeaderValue(t *testing.T) {
	r := &kgo.Record{Headers: []kgo.RecordHeader{
		{Key: "Content-Type", Value: []byte("application/json")},
		{Key: "x", Value: []byte("1")},
		{Key: "x", Value: []byte("2")},
	}}
	tests := []struct{ key, want string }{
		{topics.HeaderContentType, "application/json"},
		{"x", "2"},
		{"missing", ""},
	}
	for _, tt := range tests {
		if got := HeaderValue(r, tt.key); got != tt.want {
			t.Errorf("HeaderValue(%q) = %q, want %q", tt.key, got, tt.want)
		}
	}
	SetHeader(r, "X", "3")
	if got := HeaderValue(r, "x"); got != "3" || len(r.Headers) != 2 {
		t.Fatalf("after SetHeader: %v", r.Headers)
	}
}

package events

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/stockcast/stockcast/pkg/topics"
)

// BenchmarkDecodeValidate measures what screening costs per order line
// (Decode of the protobuf bytes, then Validate, which encodes the event
// again for its size check) against the content hash ingest computes for
// every accepted event anyway, timed in the same run: x_hash is the ratio.
func BenchmarkDecodeValidate(b *testing.B) {
	value, err := proto.Marshal(validOrder())
	if err != nil {
		b.Fatal(err)
	}
	var hashNs, screenNs time.Duration
	for b.Loop() {
		t0 := time.Now()
		ev, rej := Decode(topics.Orders, "", value)
		if rej != nil {
			b.Fatal(rej)
		}
		if r := Validate(ev, testNow); r != nil {
			b.Fatal(r)
		}
		t1 := time.Now()
		if _, err := ev.Hash(); err != nil {
			b.Fatal(err)
		}
		screenNs += t1.Sub(t0)
		hashNs += time.Since(t1)
	}
	b.ReportMetric(float64(screenNs.Nanoseconds())/float64(b.N), "screen-ns/op")
	b.ReportMetric(float64(hashNs.Nanoseconds())/float64(b.N), "hash-ns/op")
	b.ReportMetric(float64(screenNs)/float64(hashNs), "x_hash")
}

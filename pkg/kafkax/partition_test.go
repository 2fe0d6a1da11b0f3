package kafkax

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/trace"
)

// murmur2 is Kafka's Utils.murmur2, written out independently of franz-go so
// the test checks that our producer partitions like the Java client.
func murmur2(data []byte) int32 {
	length := int32(len(data))
	const m = int32(0x5bd1e995)
	h := int32(uint32(0x9747b28c) ^ uint32(length))
	for i := int32(0); i < length/4; i++ {
		i4 := i * 4
		k := int32(data[i4]) | int32(data[i4+1])<<8 | int32(data[i4+2])<<16 | int32(data[i4+3])<<24
		k *= m
		k ^= int32(uint32(k) >> 24)
		k *= m
		h *= m
		h ^= k
	}
	tail := length &^ 3
	switch length % 4 {
	case 3:
		h ^= int32(data[tail+2]) << 16
		fallthrough
	case 2:
		h ^= int32(data[tail+1]) << 8
		fallthrough
	case 1:
		h ^= int32(data[tail])
		h *= m
	}
	h ^= int32(uint32(h) >> 13)
	h *= m
	h ^= int32(uint32(h) >> 15)
	return h
}

func javaPartition(key []byte, partitions int32) int32 {
	return (murmur2(key) & 0x7fffffff) % partitions
}

func TestMurmur2MatchesKafka(t *testing.T) {
	// Vectors from Kafka's UtilsTest.testMurmur2.
	tests := map[string]int32{
		"21":                         -973932308,
		"foobar":                     -790332482,
		"a-little-bit-long-string":   -985981536,
		"a-little-bit-longer-string": -1486304829,
		"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
		"abc": 479470107,
	}
	for in, want := range tests {
		if got := murmur2([]byte(in)); got != want {
			t.Errorf("murmur2(%q) = %d, want %d", in, got, want)
		}
	}
}

func spanContextTraceID(ctx context.Context) string {
	return trace.SpanContextFromContext(ctx).TraceID().String()
}

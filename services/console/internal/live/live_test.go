package live

import (
	"strings"
	"testing"
)

func TestSumMetrics(t *testing.T) {
	text := `# HELP stockcast_consumed_total records handled
# TYPE stockcast_consumed_total counter
stockcast_consumed_total{otel_scope_name="kafkax",topic="orders.v1"} 120
stockcast_consumed_total{otel_scope_name="kafkax",topic="inventory.v1"} 3.5
stockcast_consumer_lag{partition="0",topic="orders.v1"} 4
stockcast_consumer_lag{partition="1",topic="orders.v1"} 6
stockcast_consumed_totally 99
stockcast_rejected_total{reason="a}b"} 2
go_goroutines 17
`
	got, err := SumMetrics(strings.NewReader(text), "stockcast_consumed_total", "stockcast_consumer_lag", "stockcast_rejected_total", "absent")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"stockcast_consumed_total": 123.5, "stockcast_consumer_lag": 10, "stockcast_rejected_total": 2}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if _, err := SumMetrics(strings.NewReader("stockcast_consumer_lag{x=\"1\"} nope\n"), "stockcast_consumer_lag"); err == nil {
		t.Error("a bad value was accepted")
	}
}

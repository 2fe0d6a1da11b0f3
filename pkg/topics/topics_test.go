package topics

import "testing"

func TestDLQ(t *testing.T) {
	if got := DLQ(Orders); got != "orders.v1.dlq" {
		t.Fatalf("DLQ(%q) = %q", Orders, got)
	}
	if !IsDLQ(DLQ(Demand)) || IsDLQ(Demand) {
		t.Fatalf("IsDLQ wrong for %q / %q", DLQ(Demand), Demand)
	}
}

func TestSeriesKey(t *testing.T) {
	tests := []struct {
		key           string
		sku, location string
		ok            bool
	}{
		{key: "85123A|online", sku: "85123A", location: "online", ok: true},
		{key: "a|b|c", sku: "a", location: "b|c", ok: true},
		{key: "nosep"},
		{key: "|loc"},
		{key: "sku|"},
		{key: ""},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			sku, loc, ok := SplitSeriesKey(tt.key)
			if sku != tt.sku || loc != tt.location || ok != tt.ok {
				t.Fatalf("SplitSeriesKey(%q) = %q, %q, %v; want %q, %q, %v", tt.key, sku, loc, ok, tt.sku, tt.location, tt.ok)
			}
			if ok && SeriesKey(sku, loc) != tt.key {
				t.Fatalf("SeriesKey(%q, %q) = %q, want %q", sku, loc, SeriesKey(sku, loc), tt.key)
			}
		})
	}
}

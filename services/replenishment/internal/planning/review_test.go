package planning

import (
	"errors"
	"strings"
	"testing"

	"github.com/stockcast/stockcast/pkg/replenish"
)

func TestValidateOrderQuantity(t *testing.T) {
	pol := replenish.Policy{MOQ: 20, PackSize: 12, MaxOrder: 130}
	var tenth = 0.1
	tests := []struct {
		name string
		q    float64
		pol  replenish.Policy
		err  string // "" = valid
	}{
		{"a pack multiple", 72, pol, ""},
		{"the moq, although not a pack multiple", 20, pol, ""},
		{"the max order, although not a pack multiple", 130, pol, ""},
		{"below the moq", 12, pol, "quantity 12 is below the moq 20"},
		{"above the max", 132, pol, "quantity 132 is above the max_order 130"},
		{"not a multiple", 30, pol, "quantity 30 is not a multiple of the pack_size 12"},
		{"zero", 0, pol, "quantity 0: must be > 0"},
		{"negative", -12, pol, "quantity -12: must be > 0"},
		{"float multiple of a fractional pack", 3 * tenth, replenish.Policy{PackSize: 0.1}, ""}, // 0.30000000000000004
		{"no constraints", 7.5, replenish.Policy{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateOrderQuantity(tt.q, tt.pol)
			if tt.err == "" {
				if err != nil {
					t.Fatalf("err = %v, want valid", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("err = %v, want InvalidArgument %q", err, tt.err)
			}
		})
	}
}

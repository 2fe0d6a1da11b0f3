package telemetry

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// MetricValue gathers reg and returns the value of the series called name
// whose labels include all of labels (counter, gauge, or a histogram's sample
// count). It is meant for tests and for the demo summary.
func MetricValue(reg prometheus.Gatherer, name string, labels map[string]string) (float64, error) {
	families, err := reg.Gather()
	if err != nil {
		return 0, fmt.Errorf("gather metrics: %w", err)
	}
	for _, fam := range families {
		if fam.GetName() != name {
			continue
		}
		var sum float64
		found := false
		for _, m := range fam.GetMetric() {
			if !hasLabels(m, labels) {
				continue
			}
			found = true
			switch {
			case m.GetCounter() != nil:
				sum += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				sum += m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				sum += float64(m.GetHistogram().GetSampleCount())
			case m.GetUntyped() != nil:
				sum += m.GetUntyped().GetValue()
			}
		}
		if found {
			return sum, nil
		}
		return 0, fmt.Errorf("metric %s has no series with labels %v", name, labels)
	}
	return 0, fmt.Errorf("metric %s not found", name)
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	n := 0
	for _, lp := range m.GetLabel() {
		if v, ok := want[lp.GetName()]; ok {
			if v != lp.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(want)
}

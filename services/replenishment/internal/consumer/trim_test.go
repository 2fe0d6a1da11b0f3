package consumer

import (
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	demandv1 "github.com/stockcast/stockcast/proto/stockcast/demand/v1"
	forecastv1 "github.com/stockcast/stockcast/proto/stockcast/forecast/v1"
)

// publishedForecast is a forecast event as the forecast service publishes
// it: 14 levels, 28 days with quantiles, 9 lead times, a reason with
// factors, the global model's part, issue time and model.
func publishedForecast() *forecastv1.ForecastEvent {
	at := time.Date(2011, 3, 1, 9, 30, 0, 0, time.UTC)
	levels := []float64{0.005, 0.025, 0.05, 0.1, 0.165, 0.25, 0.5, 0.75, 0.835, 0.9, 0.95, 0.975, 0.99, 0.995}
	ev := &forecastv1.ForecastEvent{
		ForecastId: "f-1", EventId: "e-1", SeriesKey: "85123A|online", Sku: "85123A", Location: "online",
		AsOf: timestamppb.New(at), IssuedAt: timestamppb.New(at.Add(time.Second)), StartDay: "2011-03-01",
		QuantileLevels: levels, Model: "gbt", ModelVersion: "v7", DemandClass: "smooth",
		Reason: &forecastv1.ForecastReason{Code: forecastv1.ReasonCode_REASON_CODE_DEMAND_SHIFT, Detail: "more", Change: 0.25,
			Factors: []*forecastv1.Attribution{{Feature: "price", Value: 3.5, Contribution: 0.1, Change: -0.2}}},
		Global: &forecastv1.GlobalForecast{Version: "g1", Weight: 0.4, Means: []float64{9.5, 10.5}, Link: "log", Bias: 0.01},
		Cause: &demandv1.DemandEvent{EventId: "e-1", OccurredAt: timestamppb.New(at),
			Change: &demandv1.DemandEvent_Demand{Demand: &demandv1.Demand{Quantity: 2, Kind: demandv1.DemandKind_DEMAND_KIND_ORDER}}},
	}
	for d := range 28 {
		day := &forecastv1.DailyForecast{Day: at.AddDate(0, 0, d).Format(time.DateOnly), Mean: 10 + float64(d%3)/3}
		for i := range levels {
			day.Quantiles = append(day.Quantiles, float64(i+d))
		}
		ev.Daily = append(ev.Daily, day)
	}
	ev.Daily[3].Mean = 0 // a day with no mean on the wire
	for _, l := range []int32{1, 2, 3, 5, 7, 10, 14, 21, 28} {
		lt := &forecastv1.LeadTimeDemand{LeadTimeDays: l, ReviewPeriodDays: l % 3, Mean: 10.1 * float64(l)}
		for i := range levels {
			lt.Quantiles = append(lt.Quantiles, float64(l)*float64(i))
		}
		ev.LeadTimeDemand = append(ev.LeadTimeDemand, lt)
	}
	return ev
}

// TestTrimForecastDecodesTheReadFields: the trimmed value decodes to the
// whole event less the fields the service never reads (issue time, model,
// reason, global part, each day's name and quantiles), bit for bit, in a
// third of the bytes; a value whose wire format is broken is left as it is
// (decoding fails as before).
func TestTrimForecastDecodesTheReadFields(t *testing.T) {
	full := publishedForecast()
	raw, err := proto.Marshal(full)
	if err != nil {
		t.Fatal(err)
	}
	trimmed := trimForecast(raw)
	var got forecastv1.ForecastEvent
	if err := proto.Unmarshal(trimmed, &got); err != nil {
		t.Fatal(err)
	}
	want := proto.Clone(full).(*forecastv1.ForecastEvent)
	want.IssuedAt, want.Model, want.ModelVersion, want.Reason, want.Global = nil, "", "", nil, nil
	for _, d := range want.Daily {
		d.Day, d.Quantiles = "", nil
	}
	det := proto.MarshalOptions{Deterministic: true}
	g, _ := det.Marshal(&got)
	w, _ := det.Marshal(want)
	if string(g) != string(w) {
		t.Fatalf("trimmed event decodes to\n%v\nwant\n%v", &got, want)
	}
	if len(trimmed)*2 > len(raw) {
		t.Fatalf("trimmed to %d of %d bytes, want at most half", len(trimmed), len(raw))
	}
	t.Logf("trimmed to %d of %d bytes", len(trimmed), len(raw))

	for name, bad := range map[string][]byte{
		"truncated":            raw[:len(raw)-3],
		"truncated daily":      raw[:len(raw)/2],
		"bad tag":              append([]byte{0x80}, raw...),
		"daily with bad inner": protowire.AppendBytes(protowire.AppendTag(nil, fieldDaily, protowire.BytesType), []byte{0x12, 0x01}),
	} {
		if got := trimForecast(bad); string(got) != string(bad) {
			t.Errorf("%s: trimmed to %x, want the value as it is", name, got)
		}
		var a, b forecastv1.ForecastEvent
		errTrim, errWhole := proto.Unmarshal(trimForecast(bad), &a), proto.Unmarshal(bad, &b)
		if (errTrim == nil) != (errWhole == nil) {
			t.Errorf("%s: decoding the trimmed value: %v, the whole: %v", name, errTrim, errWhole)
		}
	}
}

//go:build chaos

package chaos

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/stockcast/stockcast/internal/stack"
	"github.com/stockcast/stockcast/pkg/chx"
	"github.com/stockcast/stockcast/pkg/grpcx"
	"github.com/stockcast/stockcast/pkg/telemetry"
	"github.com/stockcast/stockcast/pkg/topics"
	demandv1 "github.com/stockcast/stockcast/proto/stockcast/demand/v1"
	featurev1 "github.com/stockcast/stockcast/proto/stockcast/feature/v1"
	forecastv1 "github.com/stockcast/stockcast/proto/stockcast/forecast/v1"
	inventoryv1 "github.com/stockcast/stockcast/proto/stockcast/inventory/v1"
	ordersv1 "github.com/stockcast/stockcast/proto/stockcast/orders/v1"
	replenishmentv1 "github.com/stockcast/stockcast/proto/stockcast/replenishment/v1"
)

// state is what a run's stores and output topics hold at its end.
type state struct {
	features        map[string]*featurev1.GetFeaturesResponse // by series
	latest          map[string]*forecastv1.ForecastEvent      // each series' last forecast on forecasts.v1
	lastDemand      map[string]string                         // each series' last event id on demand.v1
	forecastRecords int
	proposals       map[string]*replenishmentv1.Proposal // by proposal id
	proposalRecords int
	// proposal ids published again with other content
	proposalConflicts []string
	chProposals       uint64 // proposals FINAL
	chProposalsRaw    uint64 // rows without FINAL (a row inserted again shows until a merge)
	dlq               map[string]string
	dlqRecords        int
	chOrderLinesRaw   uint64
	// Every snapshot on features.v1 and forecast on forecasts.v1, by event
	// id, as a hash of its wall-clock-free content, to find where two runs
	// part; and the events whose redeliveries differ from the first record.
	snapshotHash, forecastHash map[string]eventHash
	unstable                   []string
}

// eventHash identifies one output record's content, and each of its
// top-level fields' (to name what differs between two runs).
type eventHash struct {
	series string
	sum    [32]byte
	fields []fieldHash
}

type fieldHash struct {
	name string
	sum  uint64
}

// differsIn names the top-level fields whose content differs.
func (h eventHash) differsIn(o eventHash) []string {
	m := map[string]uint64{}
	for _, f := range h.fields {
		m[f.name] = f.sum
	}
	var out []string
	for _, f := range o.fields {
		if s, ok := m[f.name]; !ok || s != f.sum {
			out = append(out, f.name)
		}
		delete(m, f.name)
	}
	for name := range m {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// collect reads the run's outputs: the topics from the start, Redis
// features through the feature service for every series with a forecast.
func collect(ctx context.Context, t *testing.T, name string, st *stack.Stack, adm *kadm.Client) state {
	t.Helper()
	s := state{
		features: map[string]*featurev1.GetFeaturesResponse{}, latest: map[string]*forecastv1.ForecastEvent{},
		lastDemand: map[string]string{}, proposals: map[string]*replenishmentv1.Proposal{}, dlq: map[string]string{},
	}
	for _, r := range readAll(ctx, t, adm, st.Brokers(), topics.Demand) {
		var d demandv1.DemandEvent
		if err := proto.Unmarshal(r.Value, &d); err != nil {
			t.Fatalf("%s: demand.v1 offset %d: %v", name, r.Offset, err)
		}
		s.lastDemand[string(r.Key)] = d.GetEventId()
	}
	s.snapshotHash, s.forecastHash = map[string]eventHash{}, map[string]eventHash{}
	for _, r := range readAll(ctx, t, adm, st.Brokers(), topics.Features) {
		f := &featurev1.FeatureSnapshot{}
		if err := proto.Unmarshal(r.Value, f); err != nil {
			t.Fatalf("%s: features.v1 offset %d: %v", name, r.Offset, err)
		}
		f.Applied = false // false for a redelivery
		if f.GetCause() != nil {
			f.Cause.IngestedAt = nil
		}
		s.remember(s.snapshotHash, "features.v1", f.GetEventId(), f.GetSeriesKey(), f)
	}
	forecasts := readAll(ctx, t, adm, st.Brokers(), topics.Forecasts)
	s.forecastRecords = len(forecasts)
	for _, r := range forecasts {
		f := &forecastv1.ForecastEvent{}
		if err := proto.Unmarshal(r.Value, f); err != nil {
			t.Fatalf("%s: forecasts.v1 offset %d: %v", name, r.Offset, err)
		}
		s.latest[f.GetSeriesKey()] = f
		s.remember(s.forecastHash, "forecasts.v1", f.GetEventId(), f.GetSeriesKey(), normalise(f))
	}
	props := readAll(ctx, t, adm, st.Brokers(), topics.Proposals)
	s.proposalRecords = len(props)
	for _, r := range props {
		p := &replenishmentv1.Proposal{}
		if err := proto.Unmarshal(r.Value, p); err != nil {
			t.Fatalf("%s: replenishment.v1 offset %d: %v", name, r.Offset, err)
		}
		if old := s.proposals[p.GetProposalId()]; old != nil && !proto.Equal(old, p) {
			s.proposalConflicts = append(s.proposalConflicts, p.GetProposalId())
		}
		s.proposals[p.GetProposalId()] = p
	}
	for _, topic := range []string{topics.DLQ(topics.Orders), topics.DLQ(topics.Inventory), topics.DLQ(topics.Catalog),
		topics.DLQ(topics.Demand), topics.DLQ(topics.Features), topics.DLQ(topics.Forecasts)} {
		for _, r := range readAll(ctx, t, adm, st.Brokers(), topic) {
			s.dlqRecords++
			s.dlq[dlqEventID(r)] = header(r, topics.HeaderDLQReason)
		}
	}

	conn, err := grpcx.Dial(st.GRPC(stack.Feature), telemetry.NewDiscard())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := featurev1.NewFeatureServiceClient(conn)
	for series, f := range s.latest {
		if f.GetLocation() == "" {
			continue // an item-attributes event's forecast
		}
		resp, err := client.GetFeatures(ctx, &featurev1.GetFeaturesRequest{Sku: f.GetSku(), Location: f.GetLocation(), IncludeHistory: true})
		if err != nil {
			t.Fatalf("%s: GetFeatures %s: %v", name, series, err)
		}
		s.features[series] = resp
	}

	ch, err := chx.Open(ctx, st.ClickHouse())
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	s.chProposals = count(ctx, t, ch, "SELECT count() FROM proposals FINAL")
	s.chProposalsRaw = count(ctx, t, ch, "SELECT count() FROM proposals")
	s.chOrderLinesRaw = count(ctx, t, ch, "SELECT count() FROM order_lines")
	return s
}

// remember records the hash of one record's content.
func (s *state) remember(m map[string]eventHash, topic, id, series string, msg proto.Message) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(msg)
	if err != nil {
		panic(err)
	}
	h := eventHash{series: series, sum: sha256.Sum256(b)}
	if old, ok := m[id]; ok {
		if old.sum != h.sum {
			s.unstable = append(s.unstable, topic+" "+id)
		}
		return
	}
	r := msg.ProtoReflect()
	r.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		one := r.New()
		one.Set(fd, v)
		fb, err := proto.MarshalOptions{Deterministic: true}.Marshal(one.Interface())
		if err != nil {
			panic(err)
		}
		fh := fnv.New64a()
		fh.Write(fb)
		h.fields = append(h.fields, fieldHash{name: string(fd.Name()), sum: fh.Sum64()})
		return true
	})
	m[id] = h
}

func count(ctx context.Context, t *testing.T, ch driver.Conn, q string) uint64 {
	t.Helper()
	var n uint64
	if err := ch.QueryRow(ctx, q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// checkAgainstCSV compares a run's ClickHouse history, Redis features and
// DLQs with the independent computation from the CSV.
func checkAgainstCSV(ctx context.Context, t *testing.T, name string, st *stack.Stack, res *result, want expected, rejected map[string]string) {
	t.Helper()
	ch, err := chx.Open(ctx, st.ClickHouse())
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	// Exactly once: the rows FINAL and the distinct event ids of all rows
	// (a batch inserted again after a crash adds rows that ReplacingMergeTree
	// merges away; docs/design.md) are both the CSV's.
	for _, c := range []struct {
		q    string
		want int
	}{
		{"SELECT count() FROM order_lines FINAL", want.orderLines},
		{"SELECT uniqExact(event_id) FROM order_lines", want.orderLines},
		{"SELECT count() FROM order_lines FINAL WHERE is_demand = 0", want.notDemandRows},
		{"SELECT count() FROM inventory_events FINAL", want.adjustments + res.summary.InitialStock},
		{"SELECT uniqExact(event_id) FROM inventory_events", want.adjustments + res.summary.InitialStock},
	} {
		if got := count(ctx, t, ch, c.q); int(got) != c.want {
			t.Errorf("%s: %s = %d, want %d", name, c.q, got, c.want)
		}
	}
	t.Logf("%s: order_lines has %d rows without FINAL for %d events", name, res.chOrderLinesRaw, want.orderLines)

	rows, err := ch.Query(ctx, "SELECT series_key, toString(day), sum(quantity) FROM order_lines FINAL WHERE is_demand = 1 GROUP BY series_key, day")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]map[string]float64{}
	for rows.Next() {
		var series, day string
		var q float64
		if err := rows.Scan(&series, &day, &q); err != nil {
			t.Fatal(err)
		}
		if got[series] == nil {
			got[series] = map[string]float64{}
		}
		got[series][day] = q
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	compareDaily(t, name+": ClickHouse", got, want.daily)

	// Redis features: each series' daily history and total demand.
	got = map[string]map[string]float64{}
	wantNonZero := map[string]map[string]float64{}
	for series, days := range want.daily {
		resp := res.features[series]
		if resp == nil {
			t.Errorf("%s: no features for %s", name, series)
			continue
		}
		got[series], wantNonZero[series] = map[string]float64{}, map[string]float64{}
		var total float64
		for d, q := range days {
			total += q
			if q != 0 { // a line and its cancellation on one day: no sale that day
				wantNonZero[series][d] = q
			}
		}
		for _, d := range resp.GetHistory() {
			if d.GetQuantity() != 0 {
				got[series][d.GetDay()] = d.GetQuantity()
			}
		}
		if math.Abs(resp.GetSnapshot().GetTotalDemand()-total) > 1e-9 {
			t.Errorf("%s: features %s: total demand %v, want %v", name, series, resp.GetSnapshot().GetTotalDemand(), total)
		}
	}
	compareDaily(t, name+": Redis", got, wantNonZero)

	// The DLQs hold exactly the invalid inputs, each once.
	if fmt.Sprint(sortedMap(res.dlq)) != fmt.Sprint(sortedMap(rejected)) {
		t.Errorf("%s: DLQ by event id:\n got  %v\n want %v", name, sortedMap(res.dlq), sortedMap(rejected))
	}
	if res.dlqRecords != len(res.dlq) {
		t.Errorf("%s: the DLQs hold %d records for %d events", name, res.dlqRecords, len(res.dlq))
	}

	// Each series' latest forecast is for its last event on demand.v1.
	bad := 0
	for series, ev := range res.lastDemand {
		if f := res.latest[series]; f.GetEventId() != ev {
			if bad++; bad <= 10 {
				t.Errorf("%s: latest forecast of %s is for event %q, its last event is %q", name, series, f.GetEventId(), ev)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d series' latest forecast is not for their last event", name, bad)
	}
	t.Logf("%s: %d lines, %d series, %d forecasts, %d proposals (%d rows without FINAL), %d dead letters",
		name, lines, len(res.features), res.forecastRecords, len(res.proposals), res.chProposalsRaw, res.dlqRecords)
}

// Known bugs the suite finds. Each names the sub-case it skips; the
// assertion stays and runs again once the string is emptied.
const (
	// bugNotReproducible (fixed, session 6): two runs of the same input
	// parted even without faults (up to 23,000 lines before the first
	// fault, at stock write-offs such as or-2408): ingest interleaved a
	// series' orders.v1 and inventory.v1 records by arrival. The replay
	// now produces a series' write-offs on orders.v1 with the header
	// stockcast-event-type: inventory (replay.Config.OneTopic), so the
	// order is the partition's (docs/design.md "Delivery"); separate
	// topics keep arrival order by design.
	bugNotReproducible = "" // fixed: a series' stock movements on its order lines' topic (header stockcast-event-type)
	// bugRepublished (fixed, session 4): outputs were at-least-once; a
	// batch handled again (a crash, a rebalance) published its proposals
	// again. Each poll is now one Kafka transaction (pkg/kafkax): the
	// sub-test "proposals once on the topic" asserts every proposal once.
	bugRepublished = "" // fixed: one Kafka transaction per poll (pkg/kafkax)
	// bugRedeliveredSnapshot (fixed, session 4): feature answered a
	// redelivered DemandEvent with the series' current state; it now
	// answers with the snapshot of the event's first application.
	bugRedeliveredSnapshot = "" // fixed: services/feature undo log (a redelivered event gets its first snapshot)
)

// compareRuns checks the faulty run against the fault-free one.
func compareRuns(t *testing.T, clean, faulty *result) {
	t.Helper()
	t.Run("redis features equal", func(t *testing.T) {
		// Equal as a whole except the last applied event (snapshot event_id
		// and occurred_at): a rebuild after the Redis loss applies in
		// occurred_at order (services/feature/README.md), which differs
		// from the log's order where events arrived out of time order.
		bad := 0
		for _, series := range keys(clean.features) {
			c, f := lastApplied(clean.features[series]), lastApplied(faulty.features[series])
			if !proto.Equal(c, f) {
				if bad++; bad <= 5 {
					t.Errorf("features of %s differ in %v:\n clean  %s\n faulty %s", series, fieldsDiffer(c.GetSnapshot(), f.GetSnapshot()), short(c), short(f))
				}
			}
		}
		if len(faulty.features) != len(clean.features) {
			t.Errorf("features for %d series, the fault-free run has %d", len(faulty.features), len(clean.features))
		}
		if bad > 0 {
			t.Errorf("features of %d of %d series differ from the fault-free run", bad, len(clean.features))
		}
	})

	t.Run("latest forecasts equal", func(t *testing.T) {
		// Same event, same numbers, same reason: a restarted forecast
		// service reads the previous forecast of a series back from
		// forecast_log (services/forecast/README.md, step 4).
		bad := 0
		var examples []string
		for _, series := range keys(clean.latest) {
			c, f := normalise(clean.latest[series]), normalise(faulty.latest[series])
			if !proto.Equal(c, f) {
				if bad++; bad <= 5 {
					examples = append(examples, fmt.Sprintf("latest forecast of %s differs in %v: clean event %s p50 %v, faulty event %s p50 %v",
						series, fieldsDiffer(c, f), c.GetEventId(), leadTime(c), f.GetEventId(), leadTime(f)))
				}
			}
		}
		for _, e := range examples {
			t.Log(e)
		}
		// forecast's per-series model state is a function of the sequence of
		// snapshots, the same in both runs since the order is the partitions'
		// (bugNotReproducible).
		if bad > 0 && bugNotReproducible != "" {
			t.Skipf("%d series differ; %s", bad, bugNotReproducible)
		}
		if bad > 0 {
			t.Errorf("the latest forecast of %d of %d series differs from the fault-free run", bad, len(clean.latest))
		}
	})

	t.Run("redeliveries equal the first record", func(t *testing.T) {
		for _, r := range []*result{clean, faulty} {
			byTopic := map[string][]string{}
			for _, u := range r.unstable {
				topic, id, _ := strings.Cut(u, " ")
				byTopic[topic] = append(byTopic[topic], id)
			}
			for topic, ids := range byTopic {
				t.Logf("%s: %s: %d redelivered events got another record than the first, e.g. %v", r.name, topic, len(ids), ids[:min(5, len(ids))])
			}
		}
		if len(faulty.unstable)+len(clean.unstable) > 0 && bugRedeliveredSnapshot != "" {
			t.Skip(bugRedeliveredSnapshot)
		}
		if len(faulty.unstable) > 0 || len(clean.unstable) > 0 {
			t.Errorf("redelivered records differ from the first: faulty %d, clean %d", len(faulty.unstable), len(clean.unstable))
		}
	})

	t.Run("outputs per event equal", func(t *testing.T) {
		for _, x := range []struct {
			topic        string
			clean, fault map[string]eventHash
		}{{"features.v1", clean.snapshotHash, faulty.snapshotHash}, {"forecasts.v1", clean.forecastHash, faulty.forecastHash}} {
			var differ []string
			series := map[string]bool{}
			// What differs, by field set (nothing may: a forecast's reason
			// too is the same after the forecast service's restart).
			byFields := map[string]int{}
			for id, c := range x.clean {
				f, ok := x.fault[id]
				if ok && f.sum == c.sum {
					continue
				}
				fields := "missing"
				if ok {
					fields = strings.Join(c.differsIn(f), ",")
				}
				byFields[fields]++
				differ = append(differ, id)
				series[c.series] = true
			}
			sort.Slice(differ, func(i, j int) bool { return lineOf(differ[i]) < lineOf(differ[j]) })
			t.Logf("%s: %d of %d events (%d series) have another record than in the fault-free run, first %v; "+
				"events by the fields that differ: %v",
				x.topic, len(differ), len(x.clean), len(series), differ[:min(10, len(differ))], byFields)
			if len(differ) > 0 && bugNotReproducible != "" {
				t.Skip(bugNotReproducible)
			}
			if len(differ) > 0 {
				t.Errorf("%s: %d events differ from the fault-free run", x.topic, len(differ))
			}
		}
	})

	t.Run("proposals equal", func(t *testing.T) {
		var missing, extra, changed []string
		for _, id := range keys(clean.proposals) {
			c, f := clean.proposals[id], faulty.proposals[id]
			switch {
			case f == nil:
				missing = append(missing, fmt.Sprintf("%s (series %s, event %s, qty %v)", id, c.GetSeriesKey(), c.GetEventId(), c.GetQuantity()))
			case !proto.Equal(normaliseProposal(c), normaliseProposal(f)):
				// The whole proposal (event, forecast id, stock position,
				// policy, days), not only quantity and reorder point.
				changed = append(changed, fmt.Sprintf("%s: differs in %v; faulty qty %v rop %v reason %v, clean qty %v rop %v reason %v", id,
					fieldsDiffer(normaliseProposal(c), normaliseProposal(f)),
					f.GetQuantity(), f.GetReorderPoint(), f.GetReason(), c.GetQuantity(), c.GetReorderPoint(), c.GetReason()))
			}
		}
		for _, id := range keys(faulty.proposals) {
			if clean.proposals[id] == nil {
				p := faulty.proposals[id]
				extra = append(extra, fmt.Sprintf("%s (series %s, event %s, qty %v)", id, p.GetSeriesKey(), p.GetEventId(), p.GetQuantity()))
			}
		}
		t.Logf("proposals: %d fault-free, %d faulty; %d missing, %d only in the faulty run, %d changed; e.g. %v %v %v",
			len(clean.proposals), len(faulty.proposals), len(missing), len(extra), len(changed),
			missing[:min(2, len(missing))], extra[:min(2, len(extra))], changed[:min(2, len(changed))])
		if len(missing)+len(extra)+len(changed) > 0 && bugNotReproducible != "" {
			t.Skip(bugNotReproducible)
		}
		if len(missing)+len(extra)+len(changed) > 0 {
			t.Errorf("%d proposals differ between the runs", len(missing)+len(extra)+len(changed))
		}
	})

	t.Run("proposals once on the topic", func(t *testing.T) {
		dups := false
		for _, r := range []*result{clean, faulty} {
			t.Logf("%s: replenishment.v1 holds %d records for %d proposals; proposals has %d rows FINAL, %d without",
				r.name, r.proposalRecords, len(r.proposals), r.chProposals, r.chProposalsRaw)
			if int(r.chProposals) != len(r.proposals) {
				t.Errorf("%s: proposals FINAL = %d rows, replenishment.v1 has %d proposals", r.name, r.chProposals, len(r.proposals))
			}
			// A proposal published again must be the same proposal.
			if len(r.proposalConflicts) > 0 {
				t.Errorf("%s: %d proposal ids published again with other content, e.g. %v", r.name, len(r.proposalConflicts), r.proposalConflicts[:min(5, len(r.proposalConflicts))])
			}
			dups = dups || r.proposalRecords != len(r.proposals)
		}
		if dups && bugRepublished != "" {
			t.Skip(bugRepublished)
		}
		for _, r := range []*result{clean, faulty} {
			if r.proposalRecords != len(r.proposals) {
				t.Errorf("%s: replenishment.v1 holds %d records for %d proposals", r.name, r.proposalRecords, len(r.proposals))
			}
		}
	})
}

// lineOf orders "or-<line>" event ids by line.
func lineOf(id string) int {
	n, err := strconv.Atoi(strings.TrimPrefix(strings.TrimPrefix(id, "or-stock-"), "or-"))
	if err != nil {
		return math.MaxInt
	}
	return n
}

// normalise drops what depends on the wall clock (issued_at, the cause's
// ingested_at).
func normalise(f *forecastv1.ForecastEvent) *forecastv1.ForecastEvent {
	if f == nil {
		return nil
	}
	f = proto.Clone(f).(*forecastv1.ForecastEvent)
	f.IssuedAt = nil
	if f.GetCause() != nil {
		f.Cause.IngestedAt = nil
	}
	return f
}

// normaliseProposal drops what depends on the wall clock (status_changed_at,
// set by an approval or rejection, which the suite makes none of).
func normaliseProposal(p *replenishmentv1.Proposal) *replenishmentv1.Proposal {
	p = proto.Clone(p).(*replenishmentv1.Proposal)
	p.StatusChangedAt = nil
	return p
}

// lastApplied drops the snapshot's last applied event.
func lastApplied(r *featurev1.GetFeaturesResponse) *featurev1.GetFeaturesResponse {
	if r == nil {
		return nil
	}
	r = proto.Clone(r).(*featurev1.GetFeaturesResponse)
	if r.Snapshot != nil {
		r.Snapshot.EventId, r.Snapshot.OccurredAt = "", nil
	}
	return r
}

// fieldsDiffer names the top-level fields whose JSON differs.
func fieldsDiffer(a, b proto.Message) []string {
	var ma, mb map[string]any
	ja, _ := protojson.Marshal(a)
	jb, _ := protojson.Marshal(b)
	_ = json.Unmarshal(ja, &ma)
	_ = json.Unmarshal(jb, &mb)
	var out []string
	for k, v := range ma {
		if !reflect.DeepEqual(v, mb[k]) {
			out = append(out, k)
		}
	}
	for k := range mb {
		if _, ok := ma[k]; !ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func leadTime(f *forecastv1.ForecastEvent) []float64 {
	var out []float64
	for _, lt := range f.GetLeadTimeDemand() {
		if q := lt.GetQuantiles(); len(q) > 0 {
			out = append(out, q[len(q)/2])
		}
	}
	return out
}

func short(m proto.Message) string {
	b, _ := protojson.Marshal(m)
	if len(b) > 600 {
		b = append(b[:600], "..."...)
	}
	return string(b)
}

// readAll reads a topic from the start to its current end, in partition
// and offset order.
func readAll(ctx context.Context, t *testing.T, adm *kadm.Client, brokers []string, topic string) []*kgo.Record {
	t.Helper()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("end offsets of %s: %v", topic, err)
	}
	// Outputs are written in transactions: read committed records only,
	// and the markers too (skipped), which take offsets up to the end.
	left := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			left[o.Partition] = o.Offset
		}
	})
	if len(left) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(64<<20),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	rctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	for len(left) > 0 {
		fs := cl.PollFetches(rctx)
		if err := rctx.Err(); err != nil {
			t.Fatalf("read %s: got %d records, partitions %v not read to their end: %v", topic, len(out), left, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			end, ok := left[r.Partition]
			if !ok {
				return
			}
			if r.Offset >= end-1 { // at the end, or past it (the end was an aborted record)
				delete(left, r.Partition)
			}
			if r.Offset < end && !r.Attrs.IsControl() {
				out = append(out, r)
			}
		})
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Partition != out[j].Partition {
			return out[i].Partition < out[j].Partition
		}
		return out[i].Offset < out[j].Offset
	})
	return out
}

// dlqEventID decodes a dead letter's original bytes to find its event id.
func dlqEventID(r *kgo.Record) string {
	var o ordersv1.OrderLineEvent
	if header(r, topics.HeaderContentType) == topics.ContentTypeJSON {
		if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(r.Value, &o); err == nil && o.GetEventId() != "" {
			return o.GetEventId()
		}
	}
	if r.Topic == topics.DLQ(topics.Inventory) {
		var inv inventoryv1.InventoryEvent
		if proto.Unmarshal(r.Value, &inv) == nil && inv.GetEventId() != "" {
			return inv.GetEventId()
		}
	}
	if proto.Unmarshal(r.Value, &o) == nil && o.GetEventId() != "" {
		return o.GetEventId()
	}
	return header(r, topics.HeaderEventID)
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func compareDaily(t *testing.T, store string, got, want map[string]map[string]float64) {
	t.Helper()
	bad := 0
	for series, days := range want {
		for day, q := range days {
			if g := got[series][day]; math.Abs(g-q) > 1e-9 {
				if bad++; bad <= 10 {
					t.Errorf("%s: %s on %s = %v, want %v", store, series, day, g, q)
				}
			}
		}
	}
	for series, days := range got {
		for day, q := range days {
			if _, ok := want[series][day]; !ok {
				if bad++; bad <= 10 {
					t.Errorf("%s: unexpected %s on %s = %v", store, series, day, q)
				}
			}
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d daily values differ from the CSV", store, bad)
	}
}

func sortedMap(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

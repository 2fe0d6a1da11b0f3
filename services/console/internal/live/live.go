// Package live keeps the console's live numbers: it scrapes the services'
// admin /metrics (events per second, consumer lag) and reads the
// dead-letter topics from the start (rejections by reason, with samples),
// and hands every subscriber a fresh Snapshot after each scrape.
package live

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/stockcast/stockcast/pkg/kafkax"
	"github.com/stockcast/stockcast/pkg/topics"
)

// Service is one service's admin address.
type Service struct {
	Name  string
	Admin string // host:port
}

// ServiceStats are one service's numbers at one scrape.
type ServiceStats struct {
	Name       string  `json:"name"`
	Up         bool    `json:"up"`
	Consumed   float64 `json:"consumed"`
	PerSecond  float64 `json:"per_second"`
	Lag        float64 `json:"lag"`
	Rejected   float64 `json:"rejected"`
	ScrapeErr  string  `json:"scrape_error,omitempty"`
	scrapeTime time.Time
}

// Sample is one rejected record.
type Sample struct {
	Topic   string `json:"topic"`
	Source  string `json:"source"`
	Service string `json:"service"`
	Detail  string `json:"detail"`
	Key     string `json:"key"`
	Value   string `json:"value"`
	At      string `json:"at"`
}

// Reason counts the DLQ records of one reason.
type Reason struct {
	Reason  string   `json:"reason"`
	Count   int      `json:"count"`
	Samples []Sample `json:"samples"`
}

// Snapshot is what the console shows live.
type Snapshot struct {
	At           time.Time      `json:"at"`
	EventsPerSec float64        `json:"events_per_second"` // ingest's consumed records per second
	Services     []ServiceStats `json:"services"`
	DLQ          []Reason       `json:"dlq"`
	DLQTotal     int            `json:"dlq_total"`
}

// maxSamples is how many records each reason keeps (the newest).
const maxSamples = 5

// maxSampleBytes truncates a sample's value.
const maxSampleBytes = 300

// Hub runs the scraper and the DLQ reader and fans snapshots out.
type Hub struct {
	services []Service
	brokers  []string
	interval time.Duration
	client   *http.Client
	log      *slog.Logger
	now      func() time.Time

	mu      sync.Mutex
	prev    map[string]ServiceStats
	snap    Snapshot
	reasons map[string]*Reason
	times   map[string][]time.Time // record timestamps by reason (the DLQ spike rule)
	subs    map[chan Snapshot]struct{}
}

// NewHub scrapes services every interval and reads the DLQs from brokers.
func NewHub(services []Service, brokers []string, interval time.Duration, log *slog.Logger, now func() time.Time) *Hub {
	return &Hub{
		services: services, brokers: brokers, interval: interval, log: log, now: now,
		client:  &http.Client{Timeout: 2 * time.Second},
		prev:    map[string]ServiceStats{},
		reasons: map[string]*Reason{},
		times:   map[string][]time.Time{},
		subs:    map[chan Snapshot]struct{}{},
	}
}

// Snapshot returns the latest snapshot.
func (h *Hub) Snapshot() Snapshot {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.snap
}

// Subscribe returns a channel that gets every new snapshot (a slow reader
// misses some) and a function that ends the subscription.
func (h *Hub) Subscribe() (<-chan Snapshot, func()) {
	ch := make(chan Snapshot, 1)
	h.mu.Lock()
	h.subs[ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		delete(h.subs, ch)
		h.mu.Unlock()
	}
}

// RunScraper scrapes until ctx is done.
func (h *Hub) RunScraper(ctx context.Context) error {
	t := time.NewTicker(h.interval)
	defer t.Stop()
	for {
		h.scrape(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (h *Hub) scrape(ctx context.Context) {
	stats := make([]ServiceStats, len(h.services))
	var wg sync.WaitGroup
	for i, s := range h.services {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stats[i] = h.scrapeOne(ctx, s)
		}()
	}
	wg.Wait()

	h.mu.Lock()
	defer h.mu.Unlock()
	snap := Snapshot{At: h.now().UTC(), Services: stats}
	for i := range stats {
		st := &stats[i]
		if p, ok := h.prev[st.Name]; ok && st.Up && p.Up && st.Consumed >= p.Consumed {
			if dt := st.scrapeTime.Sub(p.scrapeTime).Seconds(); dt > 0 {
				st.PerSecond = (st.Consumed - p.Consumed) / dt
			}
		}
		h.prev[st.Name] = *st
		if st.Name == "ingest" {
			snap.EventsPerSec = st.PerSecond
		}
	}
	snap.DLQ, snap.DLQTotal = h.reasonsLocked()
	h.snap = snap
	for ch := range h.subs {
		select {
		case ch <- snap:
		default:
		}
	}
}

func (h *Hub) scrapeOne(ctx context.Context, s Service) ServiceStats {
	st := ServiceStats{Name: s.Name, scrapeTime: h.now()}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.Admin+"/metrics", nil)
	if err != nil {
		st.ScrapeErr = err.Error()
		return st
	}
	resp, err := h.client.Do(req)
	if err != nil {
		st.ScrapeErr = err.Error()
		return st
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		st.ScrapeErr = resp.Status
		return st
	}
	sums, err := SumMetrics(resp.Body, "stockcast_consumed_total", "stockcast_consumer_lag", "stockcast_rejected_total")
	if err != nil {
		st.ScrapeErr = err.Error()
		return st
	}
	st.Up = true
	st.Consumed, st.Lag, st.Rejected = sums["stockcast_consumed_total"], sums["stockcast_consumer_lag"], sums["stockcast_rejected_total"]
	return st
}

// SumMetrics sums, over all label sets, the samples of the named metrics in
// a Prometheus text exposition.
func SumMetrics(r io.Reader, names ...string) (map[string]float64, error) {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		end := strings.IndexAny(line, "{ ")
		if end < 0 || !want[line[:end]] {
			continue
		}
		name := line[:end]
		rest := line[end:]
		if rest[0] == '{' {
			close := strings.LastIndex(rest, "}")
			if close < 0 {
				return nil, fmt.Errorf("metric line %q: no closing brace", line)
			}
			rest = rest[close+1:]
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return nil, fmt.Errorf("metric line %q: no value", line)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return nil, fmt.Errorf("metric line %q: %w", line, err)
		}
		out[name] += v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read metrics: %w", err)
	}
	return out, nil
}

func (h *Hub) reasonsLocked() ([]Reason, int) {
	out := make([]Reason, 0, len(h.reasons))
	total := 0
	for _, r := range h.reasons {
		c := *r
		c.Samples = append([]Sample(nil), r.Samples...)
		out = append(out, c)
		total += r.Count
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Reason < out[j].Reason
	})
	return out, total
}

// DLQTimes returns the timestamps of the dead-lettered records read so
// far, by reason.
func (h *Hub) DLQTimes() map[string][]time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string][]time.Time, len(h.times))
	for r, ts := range h.times {
		out[r] = append([]time.Time(nil), ts...)
	}
	return out
}

// DLQTopics are the dead-letter topics the console reads.
func DLQTopics() []string {
	var out []string
	for _, t := range []string{topics.Orders, topics.Inventory, topics.Catalog, topics.Demand, topics.Features, topics.Forecasts} {
		out = append(out, topics.DLQ(t))
	}
	return out
}

// RunDLQReader reads every DLQ topic from its start until ctx is done. It
// uses no consumer group: each console counts everything on its own.
func (h *Hub) RunDLQReader(ctx context.Context) error {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(h.brokers...),
		kgo.ConsumeTopics(DLQTopics()...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.MetadataMaxAge(5*time.Second),
		kafkax.ReadCommitted(), // dead letters are written in the consumers' transactions
	)
	if err != nil {
		return fmt.Errorf("create dlq reader: %w", err)
	}
	defer cl.Close()
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		fetches.EachError(func(t string, p int32, err error) {
			h.log.Debug("read dlq", "topic", t, "partition", p, "err", err)
		})
		h.mu.Lock()
		fetches.EachRecord(h.addLocked)
		h.mu.Unlock()
	}
}

func (h *Hub) addLocked(rec *kgo.Record) {
	s := Sample{Topic: rec.Topic, Key: string(rec.Key), At: rec.Timestamp.UTC().Format(time.RFC3339)}
	reason := "unknown"
	for _, hd := range rec.Headers {
		switch hd.Key {
		case topics.HeaderDLQReason:
			reason = string(hd.Value)
		case topics.HeaderDLQDetail:
			s.Detail = string(hd.Value)
		case topics.HeaderDLQSource:
			s.Source = string(hd.Value)
		case topics.HeaderDLQService:
			s.Service = string(hd.Value)
		}
	}
	v := rec.Value
	if len(v) > maxSampleBytes {
		v = v[:maxSampleBytes]
	}
	s.Value = strings.ToValidUTF8(string(v), "�")
	r := h.reasons[reason]
	if r == nil {
		r = &Reason{Reason: reason}
		h.reasons[reason] = r
	}
	r.Count++
	h.times[reason] = append(h.times[reason], rec.Timestamp)
	r.Samples = append(r.Samples, s)
	if len(r.Samples) > maxSamples {
		r.Samples = r.Samples[len(r.Samples)-maxSamples:]
	}
}

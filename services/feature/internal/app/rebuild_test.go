package app

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stockcast/stockcast/pkg/chx"
	"github.com/stockcast/stockcast/pkg/testenv"
	"github.com/stockcast/stockcast/services/feature/internal/store"
)

func TestRebuildCommand(t *testing.T) {
	ctx := context.Background()
	ch := testenv.ClickHouse(t)
	redisAddr := testenv.Redis(t)
	conn, err := chx.Open(ctx, ch)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := chx.Migrate(ctx, conn, ingestSchema...); err != nil {
		t.Fatal(err)
	}
	b, err := conn.PrepareBatch(ctx, "INSERT INTO order_lines (event_id, series_key, sku, location, day, occurred_at, type, quantity, is_demand, ingested_at)")
	if err != nil {
		t.Fatal(err)
	}
	day := time.Date(2024, 9, 30, 0, 0, 0, 0, time.UTC)
	for _, r := range []struct {
		id, sku string
		q       float64
		demand  uint8
	}{{"or-1", "A", 6, 1}, {"or-2", "A", -2, 1}, {"or-3", "B", 1, 1}, {"or-4", "POST", 1, 0}} {
		if err := b.Append(r.id, r.sku+"|online", r.sku, "online", day, day.Add(10*time.Hour), "placed", r.q, r.demand, day); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}

	env := func(k string) string {
		return map[string]string{"STOCKCAST_CLICKHOUSE_ADDR": ch.Addr, "STOCKCAST_CLICKHOUSE_DATABASE": ch.Database,
			"STOCKCAST_REDIS_ADDR": redisAddr}[k]
	}
	tests := []struct {
		args    []string
		out     string
		wantErr string
	}{
		// The state is not complete (no sentinel): -series refuses, -all
		// rebuilds under the recovery lock and marks it complete.
		{args: []string{"rebuild", "-series", "A|online"}, wantErr: "STATELOST"},
		{args: []string{"rebuild", "-all"}, out: "rebuilt 2 series and 0 items from 3 events (0 rejected by validation, as the live service does)\n" +
			"redis state marked complete (generation *): the feature service resumes\n"},
		{args: []string{"rebuild", "-series", "A|online"}, out: "rebuilt A|online from 2 events\n"},
		{args: []string{"rebuild", "-all"}, out: "rebuilt 2 series and 0 items from 3 events (0 rejected by validation, as the live service does)\n"},
		{args: []string{"rebuild"}, wantErr: "exactly one of -series or -all"},
		{args: []string{"rebuild", "-series", "A"}, wantErr: "not a series key"},
	}
	for _, tt := range tests {
		var out bytes.Buffer
		err := Run(ctx, tt.args, env, &out)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%v: err %v, want %q", tt.args, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !globMatch(tt.out, out.String()) {
			t.Errorf("%v: %q, %v; want %q", tt.args, out.String(), err, tt.out)
		}
	}

	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	defer rdb.Close()
	st, _, found, err := store.NewRedis(rdb, store.Config{DedupTTL: time.Hour}).Load(ctx, "A", "online")
	if err != nil || !found || st.TotalDemand != 4 || st.EventsApplied != 2 || st.Ring.DemandOn(st.Ring.End) != 4 {
		t.Fatalf("rebuilt A|online: found %v total %v events %d, %v", found, st.TotalDemand, st.EventsApplied, err)
	}
}

func TestConfigPrint(t *testing.T) {
	var out bytes.Buffer
	env := func(k string) string {
		return map[string]string{"STOCKCAST_FEATURE_DEDUP_TTL": "24h", "STOCKCAST_REDIS_PASSWORD": "hunter2"}[k]
	}
	if err := Run(context.Background(), []string{"-config.print", "-grpc.addr", "127.0.0.1:7000"}, env, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"feature.dedup-ttl=24h0m0s\n", "grpc.addr=127.0.0.1:7000\n", "redis.password=***\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("config print lacks %q:\n%s", want, out.String())
		}
	}
	if err := Run(context.Background(), []string{"-feature.dedup-ttl", "0s"}, env, &out); err == nil || !strings.Contains(err.Error(), "dedup-ttl") {
		t.Errorf("dedup ttl 0 accepted: %v", err)
	}
}

// globMatch matches text against pattern, where * stands for any run of
// characters but a newline.
func globMatch(pattern, text string) bool {
	return regexp.MustCompile("^" + strings.ReplaceAll(regexp.QuoteMeta(pattern), `\*`, `[^\n]*`) + "$").MatchString(text)
}

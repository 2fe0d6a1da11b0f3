package planning_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stockcast/stockcast/pkg/replenish"
	"github.com/stockcast/stockcast/pkg/testenv"
	"github.com/stockcast/stockcast/services/replenishment/internal/planning"
	"github.com/stockcast/stockcast/services/replenishment/internal/store"
)

const policyYAML = `# policies of the test
defaults:
  service_level: 0.9
  lead_time_days: 5
locations:
  online:
    moq: 10
categories:
  HOBBIES:
    pack_size: 6
    locations:
      online:
        max_order: 600
  FOODS:
    service_level: 0.98
items:
  - sku: A
    location: online
    order_cover_days: 21
  - {sku: B, location: store1, lead_time_days: 2}
`

func TestPolicyFilePrecedence(t *testing.T) {
	ctx := context.Background()
	pf, err := planning.ParsePolicyFile([]byte(policyYAML))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: testenv.Redis(t)})
	t.Cleanup(func() { _ = rdb.Close() })
	policies, err := planning.NewPolicies(store.NewPolicies(rdb), builtIn)
	if err != nil {
		t.Fatal(err)
	}
	policies.WithFile(pf)
	// built-in: 0.95, 7 days, moq 1, pack 1, cover 14.
	pol := func(sl float64, lead int, moq, pack, maxOrder float64, cover int) replenish.Policy {
		return replenish.Policy{ServiceLevel: sl, LeadTimeDays: lead, MOQ: moq, PackSize: pack, MaxOrder: maxOrder, OrderCoverDays: cover}
	}
	a := planning.Scope{SKU: "A", Location: "online"}
	c := planning.Scope{SKU: "C", Location: "online"}
	d := planning.Scope{SKU: "D", Location: "store1"}
	b := planning.Scope{SKU: "B", Location: "store1"}
	online := planning.Scope{Location: "online"}
	tests := []struct {
		name     string
		scope    planning.Scope
		category string
		want     replenish.Policy
		source   planning.Source
	}{
		{"item over category at location over location over defaults", a, "HOBBIES", pol(0.9, 5, 10, 6, 600, 21), planning.SourceFileItem},
		{"item without category", a, "", pol(0.9, 5, 10, 1, 0, 21), planning.SourceFileItem},
		{"category at location", c, "HOBBIES", pol(0.9, 5, 10, 6, 600, 14), planning.SourceFileCategoryLocation},
		{"category", c, "FOODS", pol(0.98, 5, 10, 1, 0, 14), planning.SourceFileCategory},
		{"category elsewhere has no location layer", d, "HOBBIES", pol(0.9, 5, 1, 6, 0, 14), planning.SourceFileCategory},
		{"unknown category: location", c, "TOYS", pol(0.9, 5, 10, 1, 0, 14), planning.SourceFileLocation},
		{"defaults", d, "", pol(0.9, 5, 1, 1, 0, 14), planning.SourceFileGlobal},
		{"item elsewhere", b, "", pol(0.9, 2, 1, 1, 0, 14), planning.SourceFileItem},
		{"location scope", online, "", pol(0.9, 5, 10, 1, 0, 14), planning.SourceFileLocation},
	}
	check := func(t *testing.T, scope planning.Scope, category string, want replenish.Policy, source planning.Source) {
		t.Helper()
		got, err := policies.EffectiveIn(ctx, []planning.Scope{scope}, map[planning.Scope]string{scope: category})
		if err != nil {
			t.Fatal(err)
		}
		if got[scope].Policy != want || got[scope].Source != source {
			t.Fatalf("%v (%s) = %+v from %s, want %+v from %s", scope, category, got[scope].Policy, got[scope].Source, want, source)
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { check(t, tt.scope, tt.category, tt.want, tt.source) })
	}

	// SetPolicy wins at its level, and only there.
	set := pol(0.99, 3, 1, 1, 0, 7)
	if err := policies.Set(ctx, online, replenish.ServicePolicy{Policy: set}); err != nil {
		t.Fatal(err)
	}
	check(t, c, "TOYS", set, planning.SourceLocation)                             // stored location over file location
	check(t, c, "FOODS", pol(0.98, 5, 10, 1, 0, 14), planning.SourceFileCategory) // a file category is more specific
	check(t, a, "HOBBIES", pol(0.9, 5, 10, 6, 600, 21), planning.SourceFileItem)  // so is a file item
	if err := policies.Set(ctx, a, replenish.ServicePolicy{Policy: set}); err != nil {
		t.Fatal(err)
	}
	check(t, a, "HOBBIES", set, planning.SourceSeries) // stored series over file item
}

func TestPolicyFileErrors(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"service level out of range", "defaults:\n  lead_time_days: 3\n  service_level: 1.5\n", "line 3: defaults: service_level 1.5: must be in (0, 1)"},
		{"negative moq in an item", "items:\n  - sku: A\n    location: online\n    moq: -1\n", "line 4: items[0]: moq -1: must be >= 0"},
		{"lead time too long", "locations:\n  online:\n    lead_time_days: 400\n", "line 3: locations.online: lead_time_days 400: must be in 0..365"},
		{"unknown field", "categories:\n  FOODS:\n    servce_level: 0.9\n", `line 3: categories.FOODS: unknown field "servce_level"`},
		{"wrong type", "defaults:\n  lead_time_days: seven\n", "line 2: cannot unmarshal !!str `seven` into int"},
		{"unknown section", "default:\n  moq: 1\n", `line 1: unknown section "default"`},
		{"item without location", "items:\n  - {sku: A}\n", "line 2: items[0]: sku and location are required"},
		{"item twice", "items:\n  - {sku: A, location: x}\n  - {sku: A, location: x}\n", "line 3: items[1]: A|x is listed twice"},
		{"category location layer checked", "categories:\n  F:\n    locations:\n      online:\n        pack_size: -2\n", "line 5: categories.F.locations.online: pack_size -2: must be >= 0"},
		{"not yaml", "defaults: [\n", "yaml:"},
		{"unknown kind", "defaults:\n  kind: s_T\n", `line 2: defaults: kind "s_T": want s_S, s_Q or R_S`},
		{"unknown target", "defaults:\n  target: profit\n", `line 2: defaults: target "profit": want cycle_service_level, fill_rate or newsvendor`},
		{"bad weekday", "locations:\n  online:\n    review_weekdays: [tue, fry]\n", `line 3: locations.online: review_weekdays "fry": want a weekday name`},
		{"bad anchor", "defaults:\n  review_anchor_date: 2011-13-01\n", `line 2: defaults: review_anchor_date "2011-13-01": want YYYY-MM-DD`},
		{"fill rate out of range", "defaults:\n  fill_rate: 1\n", "line 2: defaults: fill_rate 1: must be in (0, 1)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := planning.ParsePolicyFile([]byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}

	// JSON is YAML too; LoadPolicyFile names the file.
	dir := t.TempDir()
	good := filepath.Join(dir, "policies.json")
	if err := os.WriteFile(good, []byte(`{"defaults": {"service_level": 0.9}, "items": [{"sku": "A", "location": "online", "moq": 5}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := planning.LoadPolicyFile(good); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte("{\"defaults\":\n {\"moq\": -3}}"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := planning.LoadPolicyFile(bad); err == nil || !strings.Contains(err.Error(), "policy file "+bad+": line 2: defaults: moq -3: must be >= 0") {
		t.Fatalf("bad json: %v", err)
	}
	cfg := planning.Config{Defaults: builtIn, PolicyFile: bad}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("Config.Validate with a bad file: %v", err)
	}
	// A kind whose fields come from several layers is checked merged: R_S at
	// a location needs a review period and a calendar from some layer.
	incomplete := filepath.Join(dir, "incomplete.yaml")
	if err := os.WriteFile(incomplete, []byte("locations:\n  online: {kind: R_S, review_weekdays: [tue]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg = planning.Config{Defaults: builtIn, PolicyFile: incomplete}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "file:location |online: kind R_S needs review period days >= 1") {
		t.Fatalf("Config.Validate with R_S and no review period: %v", err)
	}
	complete := filepath.Join(dir, "complete.yaml")
	if err := os.WriteFile(complete, []byte("defaults: {review_period_days: 7}\nlocations:\n  online: {kind: R_S, review_weekdays: [tue, Friday], target: fill_rate, fill_rate: 0.97}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg = planning.Config{Defaults: builtIn, PolicyFile: complete}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	pf, err := planning.LoadPolicyFile(complete)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: testenv.Redis(t)})
	t.Cleanup(func() { _ = rdb.Close() })
	policies, err := planning.NewPolicies(store.NewPolicies(rdb), builtIn)
	if err != nil {
		t.Fatal(err)
	}
	policies.WithFile(pf)
	got, err := policies.Effective(context.Background(), planning.Scope{SKU: "A", Location: "online"})
	if err != nil {
		t.Fatal(err)
	}
	days, _ := replenish.WeekdaysOf(time.Tuesday, time.Friday)
	want := replenish.ServicePolicy{Policy: builtIn, Kind: replenish.KindPeriodic, ReviewWeekdays: days,
		Target: replenish.TargetFillRate, FillRate: 0.97}
	want.ReviewPeriodDays = 7
	if got.ServicePolicy != want || got.Source != planning.SourceFileLocation {
		t.Fatalf("effective %+v from %s, want %+v", got.ServicePolicy, got.Source, want)
	}
}

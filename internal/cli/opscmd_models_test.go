package cli

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stockcast/stockcast/pkg/chx"
	"github.com/stockcast/stockcast/pkg/modelregistry"
	"github.com/stockcast/stockcast/pkg/testenv"
)

// TestModelsPromote: promoting the previous version (a model rollback)
// makes it the champion and retires the current one, in the real registry.
func TestModelsPromote(t *testing.T) {
	ctx := context.Background()
	ch := testenv.ClickHouse(t)
	conn, err := chx.Open(ctx, ch)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := modelregistry.Migrate(ctx, conn); err != nil {
		t.Fatal(err)
	}
	reg := modelregistry.New(conn)
	t0 := time.Date(2026, 11, 1, 2, 30, 0, 0, time.UTC)
	for _, m := range []modelregistry.Model{
		{Version: "gbt-old", CreatedAt: t0, Artefact: "/models/gbt-old.json", WRMSSE: 0.61, Status: modelregistry.StatusChampion},
		{Version: "gbt-new", CreatedAt: t0.Add(24 * time.Hour), Artefact: "/models/gbt-new.json", WRMSSE: 0.59,
			ChampionVersion: "gbt-old", Status: modelregistry.StatusChampion},
	} {
		if err := reg.Record(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	env := &env{getenv: func(k string) string {
		return map[string]string{"STOCKCAST_CLICKHOUSE_ADDR": ch.Addr, "STOCKCAST_CLICKHOUSE_DATABASE": ch.Database}[k]
	}}
	run := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		env.stdout, env.stderr = &out, &errOut
		err := runModels(ctx, env, args)
		return out.String(), err
	}

	out, err := run("promote", "-version", "gbt-old")
	if err != nil || out != "champion: gbt-old (was gbt-new)\n" {
		t.Fatalf("promote: %q, %v", out, err)
	}
	c, ok, err := reg.Champion(ctx)
	if err != nil || !ok || c.Version != "gbt-old" {
		t.Fatalf("champion after rollback: %+v %v %v", c, ok, err)
	}
	out, err = run("list")
	if err != nil {
		t.Fatal(err)
	}
	want := "VERSION  STATUS    CREATED               WRMSSE  COMPARED WITH  ARTEFACT\n" +
		"gbt-new  retired   2026-11-02T02:30:00Z  0.5900  gbt-old        /models/gbt-new.json\n" +
		"gbt-old  champion  2026-11-01T02:30:00Z  0.6100                 /models/gbt-old.json\n"
	if out != want {
		t.Fatalf("list:\n%s\nwant:\n%s", out, want)
	}

	if _, err := run("promote", "-version", "gbt-none"); !errors.Is(err, modelregistry.ErrNotFound) {
		t.Errorf("promote of an unknown version: %v, want ErrNotFound", err)
	}
	if _, err := run("promote"); err == nil || !strings.Contains(err.Error(), "-version is required") {
		t.Errorf("promote without -version: %v", err)
	}
	if _, err := run("demote"); err == nil || !strings.Contains(err.Error(), `unknown subcommand "demote"`) {
		t.Errorf("unknown subcommand: %v", err)
	}
}

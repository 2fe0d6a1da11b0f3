package lifecycle

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stockcast/stockcast/pkg/telemetry"
)

func TestRunGroupFirstErrorCancelsOthers(t *testing.T) {
	boom := errors.New("boom")
	stopped := make(chan struct{})
	err := RunGroup(context.Background(),
		func(ctx context.Context) error { <-ctx.Done(); close(stopped); return nil },
		func(context.Context) error { return boom },
	)
	if !errors.Is(err, boom) {
		t.Fatalf("RunGroup = %v, want boom", err)
	}
	select {
	case <-stopped:
	default:
		t.Fatal("the other function was not stopped")
	}
}

func TestRunGroupParentCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := RunGroup(ctx, func(ctx context.Context) error { <-ctx.Done(); return nil }); err != nil {
		t.Fatalf("RunGroup = %v, want nil", err)
	}
}

func TestAdminEndpoints(t *testing.T) {
	tel := telemetry.NewDiscard()
	ready := &Readiness{}
	admin := NewAdmin(AdminConfig{Addr: "127.0.0.1:0"}, tel, ready)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- admin.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for admin.Addr() == "" {
		if time.Now().After(deadline) {
			t.Fatal("admin did not listen")
		}
		time.Sleep(5 * time.Millisecond)
	}
	base := "http://" + admin.Addr()

	c, err := tel.Meter.Meter("t").Int64Counter("stockcast.produced")
	if err != nil {
		t.Fatal(err)
	}
	c.Add(ctx, 4)

	tests := []struct {
		name     string
		ready    bool
		path     string
		wantCode int
		wantBody string
	}{
		{"healthz", false, "/healthz", 200, "ok"},
		{"not ready", false, "/readyz", 503, "not ready"},
		{"ready", true, "/readyz", 200, "ready"},
		{"metrics", true, "/metrics", 200, "stockcast_produced_total 4"},
		{"runtime metrics", true, "/metrics", 200, "go_goroutines"},
		{"unknown", true, "/nope", 404, ""},
		{"pprof off by config", true, "/debug/pprof/", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ready.Set(tt.ready)
			resp, err := http.Get(base + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantCode || !strings.Contains(string(body), tt.wantBody) {
				t.Fatalf("GET %s = %d %q, want %d containing %q", tt.path, resp.StatusCode, body, tt.wantCode, tt.wantBody)
			}
		})
	}

	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Run = %v, want nil after cancel", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Fatal("admin still serving after shutdown")
	}
}

func TestAdminListenError(t *testing.T) {
	admin := NewAdmin(AdminConfig{Addr: "256.0.0.1:1"}, telemetry.NewDiscard(), &Readiness{})
	if err := admin.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "listen admin") {
		t.Fatalf("Run = %v, want a listen error", err)
	}
}

func TestAdminPprof(t *testing.T) {
	admin := NewAdmin(AdminConfig{Addr: "127.0.0.1:0", Pprof: true}, telemetry.NewDiscard(), &Readiness{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- admin.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for admin.Addr() == "" {
		if time.Now().After(deadline) {
			t.Fatal("admin did not listen")
		}
		time.Sleep(5 * time.Millisecond)
	}
	resp, err := http.Get("http://" + admin.Addr() + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "goroutine profile:") {
		t.Fatalf("GET /debug/pprof/goroutine = %d %.200q, want 200 with a goroutine profile", resp.StatusCode, body)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Run = %v", err)
	}
}

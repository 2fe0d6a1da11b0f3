package app

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/stockcast/stockcast/internal/stack"
	"github.com/stockcast/stockcast/internal/stack/stacktest"
	"github.com/stockcast/stockcast/services/console/internal/api"
)

// TestStackConsole: the stack starts the console binary when given users
// (as `make demo` does); it serves the app, logs in, scrapes all four
// services and stops cleanly.
func TestStackConsole(t *testing.T) {
	// Built before the stack's deadline starts: the build alone took 4.5
	// minutes on a loaded machine and left the start no time.
	bin := stacktest.BuildServices(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	h, err := bcrypt.GenerateFromPassword([]byte("ada-pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	st, err := stack.Start(ctx, stack.Config{
		Dir: t.TempDir(), BinDir: bin, Partitions: 1,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), ConsoleUsers: []string{"ada:admin:" + string(h)},
	})
	if err != nil {
		t.Fatalf("start stack: %v", err)
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = st.Stop()
		}
	}()
	if !strings.HasPrefix(st.ConsoleURL(), "http://127.0.0.1:") {
		t.Fatalf("console url %q", st.ConsoleURL())
	}
	c := newClient(t, st.ConsoleURL())
	c.login("ada")
	var o api.Overview
	deadline := time.Now().Add(time.Minute)
	for {
		c.do("GET", "/api/overview", nil, nil, &o)
		up := 0
		for _, s := range o.Live.Services {
			if s.Up {
				up++
			}
		}
		if up == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("services up in the stack's console: %+v", o.Live.Services)
		}
		time.Sleep(100 * time.Millisecond) // polling the console
	}
	stopped = true
	if err := st.Stop(); err != nil {
		t.Fatalf("stop stack with console: %v", err)
	}
}

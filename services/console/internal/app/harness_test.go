package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/stockcast/stockcast/internal/cli"
	"github.com/stockcast/stockcast/internal/replay"
	"github.com/stockcast/stockcast/internal/stack"
	"github.com/stockcast/stockcast/internal/stack/stacktest"
	"github.com/stockcast/stockcast/pkg/retail"
	"github.com/stockcast/stockcast/pkg/testenv"
)

// replayLines real Online Retail lines feed the shared stack (about two
// trading days: enough for forecasts, proposals and a few rejections).
const replayLines = 6000

// Test users: one per role, password = name + "-pw".
var testUsers = []string{"vera:viewer", "paul:planner", "ada:admin"}

// shared is one running stack with replayed data and a console on it,
// started by the first test that needs it and stopped by TestMain.
type shared struct {
	st      *stack.Stack
	url     string // console base URL
	cancel  context.CancelFunc
	done    chan error
	logs    *syncBuffer
	replay  replay.Summary
	stopErr error
	// reportsDir gets the scheduled report, due at reportAt.
	reportsDir string
	reportAt   time.Time
	// champion and challenger are the versions of the two models
	// `stockcast train` recorded in the registry before the replay; the
	// forecast service scored the replay with the champion.
	champion, challenger string
}

var (
	sharedOnce sync.Once
	sharedEnv  *shared
	sharedErr  error
	sharedDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedEnv != nil {
		sharedEnv.cancel()
		if err := <-sharedEnv.done; err != nil {
			fmt.Fprintln(os.Stderr, "console run:", err)
			code = 1
		}
		if err := sharedEnv.st.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop stack:", err)
			code = 1
		}
	}
	if sharedDir != "" {
		os.RemoveAll(sharedDir)
	}
	os.Exit(code)
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// env returns the shared stack and console, starting them once.
func env(t *testing.T) *shared {
	t.Helper()
	sharedOnce.Do(func() {
		sharedErr = fmt.Errorf("an earlier test failed while starting them")
		sharedEnv, sharedErr = startShared(t)
	})
	if sharedErr != nil || sharedEnv == nil {
		t.Fatalf("start stack and console: %v", sharedErr)
	}
	return sharedEnv
}

func startShared(t *testing.T) (*shared, error) {
	// Built before the deadline of the start starts (the build alone took
	// 4.5 minutes on a loaded machine).
	bin := stacktest.BuildServices(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "console-test-")
	if err != nil {
		return nil, err
	}
	sharedDir = dir
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := stack.Start(ctx, stack.Config{
		Dir: filepath.Join(dir, "stack"), BinDir: bin, Partitions: 3, Logger: log,
		// Orders in packs of 6, at least 12: the review test's validation.
		ServiceFlags: map[string][]string{stack.Replenishment: {"-replenishment.moq", "12", "-replenishment.pack-size", "6"},
			stack.Forecast: {"-model.poll-interval", "500ms"}},
	})
	if err != nil {
		return nil, fmt.Errorf("start stack: %w", err)
	}
	data, _ := filepath.Abs("../../../../data/online-retail/online_retail.csv.gz")
	champion, challenger, err := trainModels(ctx, st, data, filepath.Join(dir, "models"))
	if err != nil {
		_ = st.Stop()
		return nil, err
	}
	sum, err := replay.New(replay.Config{
		Data: data, Limit: replayLines, InitialStock: true, StallTimeout: 2 * time.Minute,
		NonProductSKUs: retail.NonProductCodes(),
	}, st.Kafka(), log, nil).Run(ctx)
	if err != nil {
		_ = st.Stop()
		return nil, fmt.Errorf("replay: %w (summary %+v)", err, sum)
	}
	var users []string
	for _, u := range testUsers {
		name, _, _ := strings.Cut(u, ":")
		h, err := bcrypt.GenerateFromPassword([]byte(name+"-pw"), bcrypt.MinCost)
		if err != nil {
			return nil, err
		}
		users = append(users, u+":"+string(h))
	}
	reportsDir := filepath.Join(dir, "reports")
	s := &shared{st: st, replay: sum, reportsDir: reportsDir, champion: champion, challenger: challenger}
	// The scheduled report falls due a few seconds after the console
	// starts. A console slower to start than that would schedule it for
	// tomorrow (NextRun): then it is started again with twice the margin,
	// until the schedule it logs is the one asked for.
	for margin := 8 * time.Second; ; margin *= 2 {
		s.reportAt = time.Now().UTC().Add(margin).Truncate(time.Second)
		next, err := startConsole(t, s, users)
		if err != nil {
			_ = st.Stop()
			return nil, err
		}
		if next.Equal(s.reportAt) {
			return s, nil
		}
		s.cancel()
		if err := <-s.done; err != nil || margin >= 2*time.Minute {
			_ = st.Stop()
			return nil, fmt.Errorf("console scheduled the report at %s, asked for %s (stop: %v)\n%s", next, s.reportAt, err, s.logs.String())
		}
	}
}

// nextReportLog is the scheduler's log line with the time it waits for.
var nextReportLog = regexp.MustCompile(`"msg":"next scheduled report"[^\n]*?"at":"([^"]+)"`)

// startConsole runs the console on s's stack with the report scheduled at
// s.reportAt, waits until it serves and returns the time its scheduler
// logged as the next report's.
func startConsole(t testing.TB, s *shared, users []string) (time.Time, error) {
	st := s.st
	httpAddr := testenv.FreeAddr(t)
	var admins []string
	for _, svc := range stack.Services() {
		admins = append(admins, svc+"="+st.Admin(svc))
	}
	args := []string{
		"-http.addr", httpAddr,
		"-admin.addr", testenv.FreeAddr(t),
		"-console.users", strings.Join(users, ","),
		"-console.admins", strings.Join(admins, ","),
		"-console.scrape-interval", "300ms",
		"-kafka.brokers", strings.Join(st.Brokers(), ","),
		"-clickhouse.addr", st.ClickHouse().Addr,
		"-clickhouse.database", st.ClickHouse().Database,
		"-feature.addr", st.GRPC(stack.Feature),
		"-forecast.addr", st.GRPC(stack.Forecast),
		"-replenishment.addr", st.GRPC(stack.Replenishment),
		// Alert rules evaluated every second; every minute with a
		// dead-lettered record is a spike.
		"-alerts.interval", "1s",
		"-alerts.dlq-window", "1m",
		"-alerts.dlq-threshold", "0",
		"-reports.schedule", s.reportAt.Format(time.TimeOnly),
		"-reports.dir", s.reportsDir,
	}
	rctx, rcancel := context.WithCancel(context.Background())
	s.url, s.cancel, s.done, s.logs = "http://"+httpAddr, rcancel, make(chan error, 1), &syncBuffer{}
	done, logs := s.done, s.logs
	go func() { done <- Run(rctx, args, func(string) string { return "" }, strings.NewReader(""), logs) }()
	deadline := time.Now().Add(60 * time.Second)
	serving := false
	for {
		if !serving {
			resp, err := http.Get(s.url + "/")
			if err == nil {
				resp.Body.Close()
				serving = resp.StatusCode == http.StatusOK
			}
		}
		if m := nextReportLog.FindStringSubmatch(logs.String()); serving && m != nil {
			return time.Parse(time.RFC3339Nano, m[1])
		}
		select {
		case err := <-done:
			return time.Time{}, fmt.Errorf("console exited while starting: %v\n%s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			rcancel()
			<-done
			return time.Time{}, fmt.Errorf("console not serving with its report scheduled after 60s (serving %v)\n%s", serving, logs.String())
		}
		time.Sleep(50 * time.Millisecond) // polling the HTTP server and the log
	}
}

var (
	artefactVersion = regexp.MustCompile(`artefact (gbt-[0-9a-f]+): `)
	modelLoadsOK    = regexp.MustCompile(`stockcast_forecast_model_loads_total\{[^}]*result="ok"[^}]*\} (\d+)`)
)

// trainModels runs `stockcast train` twice on the Online Retail data set
// (its 100 best-selling stock codes, small models) into the stack's model
// registry: the first becomes the champion, the second (other settings,
// -promote never) a challenger backtested against it on the same days.
// It returns once the forecast service has loaded the champion.
func trainModels(ctx context.Context, st *stack.Stack, data, out string) (champion, challenger string, err error) {
	train := func(extra ...string) (string, error) {
		args := append([]string{"train", "-data", "online-retail", "-path", data, "-top", "100", "-registry", "on",
			"-clickhouse.addr", st.ClickHouse().Addr, "-clickhouse.database", st.ClickHouse().Database, "-out", out}, extra...)
		var stdout, stderr bytes.Buffer
		if err := cli.Run(ctx, args, func(string) string { return "" }, &stdout, &stderr); err != nil {
			return "", fmt.Errorf("stockcast %s: %w\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
		}
		m := artefactVersion.FindStringSubmatch(stdout.String())
		if m == nil {
			return "", fmt.Errorf("stockcast train printed no artefact:\n%s", stdout.String())
		}
		return m[1], nil
	}
	if champion, err = train("-rounds", "30"); err != nil {
		return "", "", err
	}
	if challenger, err = train("-rounds", "15", "-max-depth", "4", "-promote", "never"); err != nil {
		return "", "", err
	}
	deadline := time.Now().Add(time.Minute)
	for {
		body, err := httpGetBody(ctx, "http://"+st.Admin(stack.Forecast)+"/metrics")
		if m := modelLoadsOK.FindStringSubmatch(body); err == nil && m != nil && m[1] != "0" {
			return champion, challenger, nil
		}
		if time.Now().After(deadline) {
			return "", "", fmt.Errorf("the forecast service did not load champion %s within a minute (%v)", champion, err)
		}
		time.Sleep(200 * time.Millisecond) // polling the service's metrics
	}
}

func httpGetBody(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// client is one browser-like session: a cookie jar and the CSRF token.
type client struct {
	t    *testing.T
	base string
	http *http.Client
	csrf string
}

func newClient(t *testing.T, base string) *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: t, base: base, http: &http.Client{Jar: jar, Timeout: 30 * time.Second}}
}

// login logs in as name (password name-pw) and keeps the CSRF token.
func (c *client) login(name string) {
	c.t.Helper()
	var me struct {
		Role string `json:"role"`
		CSRF string `json:"csrf_token"`
	}
	if code := c.do("POST", "/api/login", map[string]string{"username": name, "password": name + "-pw"}, nil, &me); code != 200 {
		c.t.Fatalf("login %s: HTTP %d", name, code)
	}
	c.csrf = me.CSRF
}

// do sends a JSON request (with the CSRF token on unsafe methods) and
// decodes a JSON answer into out; it returns the status code.
func (c *client) do(method, path string, body any, hdr map[string]string, out any) int {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if method != "GET" && c.csrf != "" {
		req.Header.Set("X-CSRF-Token", c.csrf)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if s, ok := out.(*string); ok {
			*s = string(b)
		} else if err := json.Unmarshal(b, out); err != nil {
			c.t.Fatalf("%s %s: decode %q: %v", method, path, b, err)
		}
	}
	return resp.StatusCode
}

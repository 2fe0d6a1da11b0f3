package app

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"golang.org/x/crypto/bcrypt"

	"github.com/stockcast/stockcast/pkg/testenv"
	"github.com/stockcast/stockcast/services/console/internal/api"
	"github.com/stockcast/stockcast/services/console/internal/auth"
	"github.com/stockcast/stockcast/services/console/web"
)

// TestOIDCLogin logs in through a real OpenID provider started here
// (zitadel/oidc's OP with its in-memory users and a registered web client):
// authorization code flow with PKCE, the provider's own login form, the ID
// token verified by the console; a user with a role gets a session, one
// without is refused, a callback with a foreign state is refused.
func TestOIDCLogin(t *testing.T) {
	opLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "http://" + opLn.Addr().String()
	consoleAddr := testenv.FreeAddr(t)
	callback := "http://" + consoleAddr + "/api/oidc/callback"
	storage.RegisterClients(storage.WebClient("stockcast-console", "console-secret", callback))
	op := &http.Server{Handler: exampleop.SetupServer(issuer, storage.NewStorage(storage.NewUserStore(issuer)), nil, false),
		ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = op.Serve(opLn) }()
	defer op.Close()

	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("console-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h, _ := bcrypt.GenerateFromPassword([]byte("ada-pw"), bcrypt.MinCost)
	users, err := auth.ParseUsers([]string{"ada:admin:" + string(h)})
	if err != nil {
		t.Fatal(err)
	}
	handler := api.NewHandler(api.Deps{Users: users, Sessions: auth.NewSessions(time.Hour, false, time.Now), Assets: web.Assets(),
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: time.Now})
	cfg := api.OIDCConfig{Issuer: issuer, ClientID: "stockcast-console", ClientSecretFile: secret, RedirectURL: callback,
		Roles: []string{"Test-User@zitadel.ch=planner"}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := handler.EnableOIDC(cfg, false); err != nil {
		t.Fatal(err)
	}
	srv := &webServer{cfg: HTTPConfig{Addr: consoleAddr}, handler: handler}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("console stop: %v", err)
		}
	}()
	base := "http://" + consoleAddr
	for deadline := time.Now().Add(10 * time.Second); ; {
		if r, err := http.Get(base + "/api/login-options"); err == nil {
			var opts map[string]bool
			_ = json.NewDecoder(r.Body).Decode(&opts)
			r.Body.Close()
			if !opts["oidc"] || !opts["password"] {
				t.Fatalf("login options %v", opts)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("console not serving")
		}
		time.Sleep(50 * time.Millisecond) // polling the server's start
	}

	// login runs the browser's part of the flow as user and returns the
	// client and the final response's status.
	login := func(user, password string) (*http.Client, int, string) {
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
		resp, err := c.Get(base + "/api/oidc/login") // -> issuer -> its login form
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		m := regexp.MustCompile(`name="id" value="([^"]+)"`).FindSubmatch(page)
		if resp.StatusCode != 200 || m == nil || !strings.HasPrefix(resp.Request.URL.String(), issuer+"/login/") {
			t.Fatalf("issuer login form: HTTP %d at %s: %.300s", resp.StatusCode, resp.Request.URL, page)
		}
		resp, err = c.PostForm(issuer+"/login/username", url.Values{"id": {string(m[1])}, "username": {user}, "password": {password}})
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return c, resp.StatusCode, resp.Request.URL.String() + " " + string(body)
	}

	c, code, where := login("test-user@127.0.0.1", "verysecure")
	if code != 200 || !strings.Contains(where, `<div id="root">`) {
		t.Fatalf("after the issuer's login: HTTP %d %.200s", code, where)
	}
	resp, err := c.Get(base + "/api/me")
	if err != nil {
		t.Fatal(err)
	}
	var me struct{ User, Role string }
	_ = json.NewDecoder(resp.Body).Decode(&me)
	resp.Body.Close()
	if resp.StatusCode != 200 || me.User != "test-user@zitadel.ch" || me.Role != "planner" {
		t.Errorf("me after oidc login: HTTP %d %+v, want test-user@zitadel.ch planner", resp.StatusCode, me)
	}
	var session *http.Cookie
	for _, ck := range c.Jar.Cookies(&url.URL{Scheme: "http", Host: consoleAddr, Path: "/"}) {
		if ck.Name == auth.CookieName {
			session = ck
		}
	}
	if session == nil {
		t.Errorf("no session cookie after oidc login")
	}

	// A wrong password stays at the issuer; a user without a role is refused.
	if _, code, where := login("test-user@127.0.0.1", "wrong"); code != 200 || !strings.Contains(where, "/login/") {
		t.Errorf("wrong password at the issuer: HTTP %d %.200s", code, where)
	}
	if _, code, where := login("test-user2", "verysecure"); code != http.StatusForbidden || !strings.Contains(where, "no console role for test-user2@zitadel.ch") {
		t.Errorf("user without a role: HTTP %d %.200s", code, where)
	}
	// A callback whose state this browser did not start.
	r, err := http.Get(base + "/api/oidc/callback?state=forged&code=x")
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusBadRequest {
		t.Errorf("forged state: HTTP %d, want 400", r.StatusCode)
	}
}

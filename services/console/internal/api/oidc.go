package api

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/stockcast/stockcast/pkg/config"
	"github.com/stockcast/stockcast/services/console/internal/auth"
)

// OIDCConfig configures the optional OpenID Connect login (authorization
// code flow with PKCE). Logged-in people get a role from Roles by their
// verified e-mail address; anyone else is refused.
type OIDCConfig struct {
	Issuer           string
	ClientID         string
	ClientSecretFile string
	RedirectURL      string   // https://console.example/api/oidc/callback
	Roles            []string // "email=role"
}

// RegisterFlags registers the -oidc.* flags.
func (c *OIDCConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Issuer, "oidc.issuer", "", "OpenID Connect issuer URL: enables \"Log in with SSO\" (with -oidc.client-id, -oidc.client-secret-file, -oidc.redirect-url, -oidc.roles)")
	fs.StringVar(&c.ClientID, "oidc.client-id", "", "OIDC client id of the console")
	fs.StringVar(&c.ClientSecretFile, "oidc.client-secret-file", "", "file holding the OIDC client secret")
	fs.StringVar(&c.RedirectURL, "oidc.redirect-url", "", "the console's callback URL as registered with the issuer, ending in /api/oidc/callback")
	config.StringsVar(fs, &c.Roles, "oidc.roles", nil, "roles of OIDC users, email=viewer|planner|admin, comma-separated; other users are refused")
}

// Enabled reports whether OIDC login is configured.
func (c OIDCConfig) Enabled() bool { return c.Issuer != "" }

// Validate checks the configuration.
func (c OIDCConfig) Validate() error {
	if !c.Enabled() {
		return nil
	}
	var errs []error
	if c.ClientID == "" || c.ClientSecretFile == "" || c.RedirectURL == "" {
		errs = append(errs, errors.New("-oidc.issuer needs -oidc.client-id, -oidc.client-secret-file and -oidc.redirect-url"))
	}
	if !strings.HasSuffix(c.RedirectURL, "/api/oidc/callback") {
		errs = append(errs, fmt.Errorf("-oidc.redirect-url %q must end in /api/oidc/callback", c.RedirectURL))
	}
	if _, err := c.roleMap(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (c OIDCConfig) roleMap() (map[string]auth.Role, error) {
	m := map[string]auth.Role{}
	for _, e := range c.Roles {
		email, role, ok := strings.Cut(e, "=")
		if !ok || email == "" {
			return nil, fmt.Errorf("-oidc.roles entry %q: want email=role", e)
		}
		r, err := auth.ParseRole(role)
		if err != nil {
			return nil, fmt.Errorf("-oidc.roles entry %q: %w", e, err)
		}
		m[strings.ToLower(email)] = r
	}
	return m, nil
}

// oidcLogin runs the flow: /api/oidc/login redirects to the issuer with a
// fresh state, nonce and PKCE verifier (kept server-side for 10 minutes and
// bound to the browser by an HttpOnly cookie); /api/oidc/callback checks
// the state, exchanges the code, verifies the ID token (signature, issuer,
// audience, expiry, nonce) and starts the same server-side session as a
// password login.
type oidcLogin struct {
	cfg    OIDCConfig
	roles  map[string]auth.Role
	secret string
	secure bool

	mu       sync.Mutex
	provider *oidc.Provider // discovered on first use
	pending  map[string]pendingLogin
}

type pendingLogin struct {
	nonce, verifier string
	expires         time.Time
}

const (
	oidcStateCookie = "stockcast_oidc_state"
	oidcPendingTTL  = 10 * time.Minute
)

func newOIDCLogin(cfg OIDCConfig, secure bool) (*oidcLogin, error) {
	roles, err := cfg.roleMap()
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(cfg.ClientSecretFile)
	if err != nil {
		return nil, fmt.Errorf("read oidc client secret: %w", err)
	}
	return &oidcLogin{cfg: cfg, roles: roles, secret: strings.TrimSpace(string(b)), secure: secure, pending: map[string]pendingLogin{}}, nil
}

func (o *oidcLogin) oauth(ctx context.Context) (*oauth2.Config, *oidc.Provider, error) {
	o.mu.Lock()
	p := o.provider
	o.mu.Unlock()
	if p == nil {
		var err error
		if p, err = oidc.NewProvider(ctx, o.cfg.Issuer); err != nil {
			return nil, nil, fmt.Errorf("discover oidc issuer %s: %w", o.cfg.Issuer, err)
		}
		o.mu.Lock()
		o.provider = p
		o.mu.Unlock()
	}
	return &oauth2.Config{ClientID: o.cfg.ClientID, ClientSecret: o.secret, RedirectURL: o.cfg.RedirectURL,
		Endpoint: p.Endpoint(), Scopes: []string{oidc.ScopeOpenID, "email"}}, p, nil
}

func randomString() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (h *Handler) oidcStart(w http.ResponseWriter, r *http.Request) {
	o := h.oidc
	ctx, cancel := context.WithTimeout(r.Context(), h.d.CallTimeout)
	defer cancel()
	oc, _, err := o.oauth(ctx)
	if err != nil {
		h.d.Log.Warn("oidc login", "err", err)
		jsonError(w, http.StatusBadGateway, err.Error())
		return
	}
	state, nonce, verifier := randomString(), randomString(), oauth2.GenerateVerifier()
	now := h.d.Now()
	o.mu.Lock()
	for k, p := range o.pending {
		if now.After(p.expires) {
			delete(o.pending, k)
		}
	}
	o.pending[state] = pendingLogin{nonce: nonce, verifier: verifier, expires: now.Add(oidcPendingTTL)}
	o.mu.Unlock()
	// Lax: the cookie must come back on the issuer's top-level redirect.
	http.SetCookie(w, &http.Cookie{Name: oidcStateCookie, Value: state, Path: "/api/oidc/", HttpOnly: true, Secure: o.secure,
		SameSite: http.SameSiteLaxMode, MaxAge: int(oidcPendingTTL.Seconds())})
	http.Redirect(w, r, oc.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)), http.StatusFound)
}

func (h *Handler) oidcCallback(w http.ResponseWriter, r *http.Request) {
	o := h.oidc
	state := r.URL.Query().Get("state")
	c, err := r.Cookie(oidcStateCookie)
	if state == "" || err != nil || c.Value != state {
		jsonError(w, http.StatusBadRequest, "oidc state missing or not this browser's")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: oidcStateCookie, Value: "", Path: "/api/oidc/", MaxAge: -1, HttpOnly: true, Secure: o.secure})
	o.mu.Lock()
	p, ok := o.pending[state]
	delete(o.pending, state) // one use
	o.mu.Unlock()
	if !ok || h.d.Now().After(p.expires) {
		jsonError(w, http.StatusBadRequest, "oidc login expired or unknown: start again")
		return
	}
	if e := r.URL.Query().Get("error"); e != "" {
		jsonError(w, http.StatusUnauthorized, "issuer refused: "+e+" "+r.URL.Query().Get("error_description"))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.d.CallTimeout)
	defer cancel()
	oc, prov, err := o.oauth(ctx)
	if err != nil {
		jsonError(w, http.StatusBadGateway, err.Error())
		return
	}
	tok, err := oc.Exchange(ctx, r.URL.Query().Get("code"), oauth2.VerifierOption(p.verifier))
	if err != nil {
		h.d.Log.Info("oidc code exchange", "err", err)
		jsonError(w, http.StatusUnauthorized, "code exchange failed")
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := prov.Verifier(&oidc.Config{ClientID: o.cfg.ClientID}).Verify(ctx, raw)
	if err != nil {
		h.d.Log.Info("oidc id token", "err", err)
		jsonError(w, http.StatusUnauthorized, "id token not valid")
		return
	}
	if idt.Nonce != p.nonce {
		jsonError(w, http.StatusUnauthorized, "id token nonce mismatch")
		return
	}
	var claims struct {
		Email    string `json:"email"`
		Verified *bool  `json:"email_verified"`
	}
	if err := idt.Claims(&claims); err != nil {
		jsonError(w, http.StatusUnauthorized, "id token claims unreadable")
		return
	}
	if claims.Email == "" {
		// Not in the ID token: ask the userinfo endpoint, for the same subject.
		ui, err := prov.UserInfo(ctx, oauth2.StaticTokenSource(tok))
		if err != nil || ui.Subject != idt.Subject || ui.Email == "" {
			h.d.Log.Info("oidc userinfo", "err", err)
			jsonError(w, http.StatusUnauthorized, "no email for this login")
			return
		}
		v := ui.EmailVerified
		claims.Email, claims.Verified = ui.Email, &v
	}
	email := strings.ToLower(claims.Email)
	role, ok := o.roles[email]
	if !ok || (claims.Verified != nil && !*claims.Verified) {
		h.d.Log.Info("oidc login refused", "email", email)
		jsonError(w, http.StatusForbidden, "no console role for "+email)
		return
	}
	h.d.Sessions.Start(w, auth.User{Name: email, Role: role})
	h.d.Log.Info("login", "user", email, "role", role.String(), "via", "oidc")
	http.Redirect(w, r, "/", http.StatusFound)
}

// loginOptions tells the login page which logins exist.
func (h *Handler) loginOptions(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, map[string]bool{"password": true, "oidc": h.oidc != nil})
}

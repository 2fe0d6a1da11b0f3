// Package auth holds the console's users, roles and sessions: configured
// users with bcrypt password hashes, server-side sessions in an HttpOnly
// SameSite=Strict cookie, and a per-session CSRF token that every unsafe
// request must echo in a header.
package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Role orders what a user may do: a viewer reads, a planner also changes
// replenishment policy, an admin everything.
type Role int

// Roles, weakest first.
const (
	Viewer Role = iota + 1
	Planner
	Admin
)

func (r Role) String() string {
	switch r {
	case Viewer:
		return "viewer"
	case Planner:
		return "planner"
	case Admin:
		return "admin"
	}
	return "none"
}

// ParseRole reads "viewer", "planner" or "admin".
func ParseRole(s string) (Role, error) {
	for _, r := range []Role{Viewer, Planner, Admin} {
		if r.String() == s {
			return r, nil
		}
	}
	return 0, fmt.Errorf("unknown role %q (viewer, planner, admin)", s)
}

// User is one configured user.
type User struct {
	Name string
	Role Role
	hash []byte
}

// Users are the configured users by name.
type Users map[string]User

// ParseUsers reads entries "name:role:bcrypt-hash".
func ParseUsers(entries []string) (Users, error) {
	us := Users{}
	for _, e := range entries {
		name, rest, ok := strings.Cut(e, ":")
		role, hash, ok2 := strings.Cut(rest, ":")
		if !ok || !ok2 || name == "" {
			return nil, fmt.Errorf("user entry %q: want name:role:bcrypt-hash", redact(e))
		}
		r, err := ParseRole(role)
		if err != nil {
			return nil, fmt.Errorf("user %s: %w", name, err)
		}
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return nil, fmt.Errorf("user %s: password hash: %w", name, err)
		}
		if _, dup := us[name]; dup {
			return nil, fmt.Errorf("user %s configured twice", name)
		}
		us[name] = User{Name: name, Role: r, hash: []byte(hash)}
	}
	return us, nil
}

func redact(e string) string {
	if i := strings.LastIndex(e, ":"); i >= 0 {
		return e[:i] + ":…"
	}
	return e
}

// HashPassword returns the bcrypt hash of a password for the users flag.
func HashPassword(password string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// dummyHash makes a login for an unknown user cost as much as a wrong password.
var dummyHash = []byte("$2a$10$CUxHHt8wXEdVY9gdc2t5UeA/EXZqzAH2Icj7Vp5oQ22m3eox6pCWu")

// Check returns the user when name and password match.
func (us Users) Check(name, password string) (User, bool) {
	u, ok := us[name]
	if !ok {
		_ = bcrypt.CompareHashAndPassword(dummyHash, []byte(password))
		return User{}, false
	}
	if bcrypt.CompareHashAndPassword(u.hash, []byte(password)) != nil {
		return User{}, false
	}
	return u, true
}

// Session is one logged-in browser.
type Session struct {
	User    string
	Role    Role
	CSRF    string
	Expires time.Time
}

// CookieName is the session cookie.
const CookieName = "stockcast_session"

// CSRFHeader carries the session's CSRF token on unsafe requests.
const CSRFHeader = "X-CSRF-Token"

// Sessions are the server-side sessions, by token.
type Sessions struct {
	ttl    time.Duration
	secure bool
	now    func() time.Time

	mu   sync.Mutex
	byID map[string]Session
}

// NewSessions keeps sessions for ttl since login; secure marks the cookie
// Secure (set it when serving TLS).
func NewSessions(ttl time.Duration, secure bool, now func() time.Time) *Sessions {
	return &Sessions{ttl: ttl, secure: secure, now: now, byID: map[string]Session{}}
}

func token() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Start creates a session for u and sets its cookie.
func (s *Sessions) Start(w http.ResponseWriter, u User) Session {
	id := token()
	sess := Session{User: u.Name, Role: u.Role, CSRF: token(), Expires: s.now().Add(s.ttl)}
	s.mu.Lock()
	for k, v := range s.byID { // drop expired sessions while here
		if !s.now().Before(v.Expires) {
			delete(s.byID, k)
		}
	}
	s.byID[id] = sess
	s.mu.Unlock()
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: id, Path: "/", HttpOnly: true, Secure: s.secure,
		SameSite: http.SameSiteStrictMode, Expires: sess.Expires,
	})
	return sess
}

// End removes the request's session and clears the cookie.
func (s *Sessions) End(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(CookieName); err == nil {
		s.mu.Lock()
		delete(s.byID, c.Value)
		s.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", HttpOnly: true, Secure: s.secure,
		SameSite: http.SameSiteStrictMode, MaxAge: -1})
}

// ErrNoSession means the request has no live session.
var ErrNoSession = errors.New("no session")

// Get returns the request's live session.
func (s *Sessions) Get(r *http.Request) (Session, error) {
	c, err := r.Cookie(CookieName)
	if err != nil {
		return Session{}, ErrNoSession
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.byID[c.Value]
	if !ok {
		return Session{}, ErrNoSession
	}
	if !s.now().Before(sess.Expires) {
		delete(s.byID, c.Value)
		return Session{}, ErrNoSession
	}
	return sess, nil
}

// SafeMethod reports whether a method never changes anything.
func SafeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// SameOrigin reports whether an unsafe request comes from the console's own
// pages: an Origin header, when the browser sends one, must name the host
// the request was sent to.
func SameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

// CheckCSRF verifies the token an unsafe request carries against its session.
func CheckCSRF(r *http.Request, sess Session) bool {
	got := r.Header.Get(CSRFHeader)
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(sess.CSRF)) == 1 && SameOrigin(r)
}

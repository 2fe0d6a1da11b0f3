package auth

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

func hash(t *testing.T, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func TestParseUsersAndCheck(t *testing.T) {
	h := hash(t, "s3cret")
	us, err := ParseUsers([]string{"ann:planner:" + h, "bob:viewer:" + h})
	if err != nil {
		t.Fatal(err)
	}
	if u, ok := us.Check("ann", "s3cret"); !ok || u.Role != Planner {
		t.Errorf("ann with the right password: %v %v", u, ok)
	}
	for _, c := range [][2]string{{"ann", "wrong"}, {"nobody", "s3cret"}, {"ann", ""}} {
		if _, ok := us.Check(c[0], c[1]); ok {
			t.Errorf("Check(%q, %q) accepted", c[0], c[1])
		}
	}
	for _, bad := range [][]string{
		{"ann"}, {"ann:planner"}, {":viewer:" + h}, {"ann:boss:" + h}, {"ann:viewer:plaintext"},
		{"ann:viewer:" + h, "ann:admin:" + h},
	} {
		_, err := ParseUsers(bad)
		if err == nil {
			t.Errorf("ParseUsers(%q) accepted", bad)
		} else if strings.Contains(err.Error(), h) {
			t.Errorf("error %q shows the hash", err)
		}
	}
}

func TestSessionsExpireAndCSRF(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := NewSessions(time.Hour, true, func() time.Time { return now })
	rec := httptest.NewRecorder()
	sess := s.Start(rec, User{Name: "ann", Role: Admin})
	cookie := rec.Result().Cookies()[0]
	if !cookie.HttpOnly || !cookie.Secure || cookie.SameSite != http.SameSiteStrictMode {
		t.Fatalf("cookie %+v", cookie)
	}
	req := httptest.NewRequest("POST", "http://console.test/api/policy", nil)
	req.AddCookie(cookie)
	if got, err := s.Get(req); err != nil || got.User != "ann" {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	if CheckCSRF(req, sess) {
		t.Error("CSRF accepted without a token")
	}
	req.Header.Set(CSRFHeader, sess.CSRF)
	if !CheckCSRF(req, sess) {
		t.Error("CSRF refused with the token")
	}
	req.Header.Set("Origin", "http://other.test")
	if CheckCSRF(req, sess) {
		t.Error("CSRF accepted from another origin")
	}
	req.Header.Set("Origin", "http://console.test")
	if !CheckCSRF(req, sess) {
		t.Error("CSRF refused from the same origin")
	}
	now = now.Add(time.Hour)
	if _, err := s.Get(req); err != ErrNoSession {
		t.Errorf("session after its ttl: %v", err)
	}
}

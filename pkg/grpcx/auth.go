package grpcx

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// AuthConfig configures bearer-token authentication and per-method roles.
// Authentication is on when TokensFile or Tokens names at least one token.
type AuthConfig struct {
	// TokensFile holds one token a line: "<name> <role>[,<role>...] <secret>",
	// where secret is the token itself or "sha256:<hex>" of it; '#' starts
	// a comment. Tokens (from the environment, STOCKCAST_GRPC_AUTH_TOKENS)
	// holds the same lines separated by ';' or newlines.
	TokensFile string
	Tokens     string
	// MethodRoles maps methods to the roles that may call them:
	// "<pattern>=<role>|<role>,..." with pattern a full method
	// ("/stockcast.ingest.v1.IngestService/PublishOrderLines"), a service
	// ("/stockcast.ingest.v1.IngestService/*") or "*"; the most specific
	// pattern decides, and role "*" is any valid token. Empty: every valid
	// token may call every method. A method no pattern matches is denied.
	MethodRoles string
	// PublicHealth and PublicReflection exempt the health and reflection
	// services from authentication.
	PublicHealth     bool
	PublicReflection bool
}

// RegisterFlags registers the flags under prefix, e.g. "grpc." gives
// -grpc.auth.tokens-file, -grpc.auth.tokens, -grpc.auth.method-roles,
// -grpc.auth.public-health and -grpc.auth.public-reflection.
func (c *AuthConfig) RegisterFlags(fs *flag.FlagSet, prefix string) {
	fs.StringVar(&c.TokensFile, prefix+"auth.tokens-file", "",
		"file of bearer tokens, one per line: <name> <role>[,<role>] <token or sha256:hex>; empty (and no -auth.tokens) disables authentication")
	fs.StringVar(&c.Tokens, prefix+"auth.tokens", "",
		"bearer tokens as in the tokens file, lines separated by ';' (set it through the environment, never on the command line)")
	fs.StringVar(&c.MethodRoles, prefix+"auth.method-roles", "",
		"roles per method: <full method|/service/*|*>=<role>|<role>,...; empty lets every valid token call every method")
	fs.BoolVar(&c.PublicHealth, prefix+"auth.public-health", true, "serve the health service without a token")
	fs.BoolVar(&c.PublicReflection, prefix+"auth.public-reflection", false, "serve reflection without a token")
}

// Validate checks the configuration, reading the tokens file.
func (c *AuthConfig) Validate() error {
	_, err := c.authorizer()
	return err
}

// Enabled reports whether tokens are configured (the file is not read).
func (c *AuthConfig) Enabled() bool { return c.TokensFile != "" || strings.TrimSpace(c.Tokens) != "" }

// token is a known token: only the SHA-256 of the secret is kept.
type token struct {
	name  string
	roles []string
	hash  [sha256.Size]byte
}

// authorizer decides who may call what.
type authorizer struct {
	tokens []token
	rules  map[string][]string // pattern -> roles
	public []string            // method prefixes that need no token
}

const (
	healthPrefix     = "/grpc.health.v1.Health/"
	reflectionPrefix = "/grpc.reflection."
)

func (c *AuthConfig) authorizer() (*authorizer, error) {
	if !c.Enabled() {
		return nil, nil
	}
	a := &authorizer{rules: map[string][]string{}}
	var errs []error
	add := func(where string, text string) {
		for i, line := range strings.FieldsFunc(text, func(r rune) bool { return r == '\n' || r == ';' }) {
			if j := strings.IndexByte(line, '#'); j >= 0 {
				line = line[:j]
			}
			f := strings.Fields(line)
			if len(f) == 0 {
				continue
			}
			// The line is never quoted in errors: it holds a secret.
			if len(f) != 3 {
				errs = append(errs, fmt.Errorf("grpc auth tokens %s, entry %d: want <name> <roles> <secret>, got %d fields", where, i+1, len(f)))
				continue
			}
			tok := token{name: f[0], roles: strings.Split(f[1], ",")}
			if hexHash, ok := strings.CutPrefix(f[2], "sha256:"); ok {
				b, err := hex.DecodeString(hexHash)
				if err != nil || len(b) != sha256.Size {
					errs = append(errs, fmt.Errorf("grpc auth tokens %s, token %q: sha256: wants 64 hex digits", where, tok.name))
					continue
				}
				copy(tok.hash[:], b)
			} else {
				if len(f[2]) < 16 {
					errs = append(errs, fmt.Errorf("grpc auth tokens %s, token %q: secret shorter than 16 bytes", where, tok.name))
					continue
				}
				tok.hash = sha256.Sum256([]byte(f[2]))
			}
			for _, t := range a.tokens {
				if t.name == tok.name {
					errs = append(errs, fmt.Errorf("grpc auth tokens %s: token name %q twice", where, tok.name))
				}
			}
			a.tokens = append(a.tokens, tok)
		}
	}
	if c.TokensFile != "" {
		b, err := os.ReadFile(c.TokensFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("read grpc auth tokens file: %w", err))
		} else {
			add("file "+c.TokensFile, string(b))
		}
	}
	add("flag", c.Tokens)
	if len(a.tokens) == 0 && len(errs) == 0 {
		errs = append(errs, errors.New("grpc auth: tokens configured but none found"))
	}
	for _, rule := range strings.Split(c.MethodRoles, ",") {
		rule = strings.TrimSpace(rule)
		if rule == "" {
			continue
		}
		pattern, roles, ok := strings.Cut(rule, "=")
		pattern = strings.TrimSpace(pattern)
		if !ok || roles == "" || (pattern != "*" && !strings.HasPrefix(pattern, "/")) {
			errs = append(errs, fmt.Errorf("grpc auth method roles %q: want <method|/service/*|*>=<role>|<role>", rule))
			continue
		}
		a.rules[pattern] = strings.Split(roles, "|")
	}
	if c.PublicHealth {
		a.public = append(a.public, healthPrefix)
	}
	if c.PublicReflection {
		a.public = append(a.public, reflectionPrefix)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return a, nil
}

// lookup finds the token whose hash matches secret's; it compares with
// every known token in constant time, so timing tells nothing about which
// (or whether one) matched.
func (a *authorizer) lookup(secret string) (token, bool) {
	h := sha256.Sum256([]byte(secret))
	found, match := -1, 0
	for i := range a.tokens {
		eq := subtle.ConstantTimeCompare(h[:], a.tokens[i].hash[:])
		found = subtle.ConstantTimeSelect(eq, i, found)
		match |= eq
	}
	if match == 0 {
		return token{}, false
	}
	return a.tokens[found], true
}

// rolesFor returns the roles allowed to call method and whether any rule
// covers it.
func (a *authorizer) rolesFor(method string) ([]string, bool) {
	if len(a.rules) == 0 {
		return []string{"*"}, true
	}
	if r, ok := a.rules[method]; ok {
		return r, true
	}
	if i := strings.LastIndexByte(method, '/'); i > 0 {
		if r, ok := a.rules[method[:i+1]+"*"]; ok {
			return r, true
		}
	}
	r, ok := a.rules["*"]
	return r, ok
}

// authorize returns the context of an allowed call (carrying the caller's
// token name) or the status error to refuse it with.
func (a *authorizer) authorize(ctx context.Context, method string) (context.Context, error) {
	for _, p := range a.public {
		if strings.HasPrefix(method, p) {
			return ctx, nil
		}
	}
	secret, ok := bearer(ctx)
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "missing bearer token")
	}
	tok, ok := a.lookup(secret)
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "invalid bearer token")
	}
	roles, ok := a.rolesFor(method)
	if !ok || !(slices.Contains(roles, "*") || slices.ContainsFunc(tok.roles, func(r string) bool { return slices.Contains(roles, r) })) {
		return nil, status.Errorf(codes.PermissionDenied, "token %q may not call %s", tok.name, method)
	}
	return context.WithValue(ctx, callerKey{}, tok.name), nil
}

// bearer returns the token of the "authorization: Bearer <token>" header.
func bearer(ctx context.Context) (string, bool) {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) != 1 {
		return "", false
	}
	scheme, tok, ok := strings.Cut(vals[0], " ")
	if !ok || !strings.EqualFold(scheme, "bearer") || tok == "" {
		return "", false
	}
	return tok, true
}

type callerKey struct{}

// Caller returns the name of the token an authenticated call was made
// with, or "" (authentication off, or a public method).
func Caller(ctx context.Context) string {
	s, _ := ctx.Value(callerKey{}).(string)
	return s
}

func (a *authorizer) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ctx, err := a.authorize(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (a *authorizer) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, err := a.authorize(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	return handler(srv, &authedStream{ServerStream: ss, ctx: ctx})
}

type authedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *authedStream) Context() context.Context { return s.ctx }

// ClientAuthConfig configures the bearer token a client sends.
type ClientAuthConfig struct {
	TokenFile string // file holding the token (surrounding white space ignored)
	Token     string // the token itself; set it through the environment
}

// RegisterFlags registers -<prefix>token-file and -<prefix>token (from
// the environment: STOCKCAST_<PREFIX>_TOKEN).
func (c *ClientAuthConfig) RegisterFlags(fs *flag.FlagSet, prefix string) {
	fs.StringVar(&c.TokenFile, prefix+"token-file", "", "file holding the bearer token sent with every call")
	fs.StringVar(&c.Token, prefix+"token", "", "bearer token sent with every call (set it through the environment)")
}

// tokenCreds sends "authorization: Bearer <token>" with every call.
type tokenCreds struct{ header string }

func (c tokenCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": c.header}, nil
}

// RequireTransportSecurity is false so that tokens also work on a
// plaintext in-cluster network; use TLS wherever the network is not trusted.
func (tokenCreds) RequireTransportSecurity() bool { return false }

// WithToken returns the dial option that sends c's token, or nil when no
// token is configured.
func WithToken(c ClientAuthConfig) (grpc.DialOption, error) {
	tok := c.Token
	if c.TokenFile != "" {
		b, err := os.ReadFile(c.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("read grpc token file: %w", err)
		}
		tok = string(b)
	}
	tok = strings.TrimSpace(tok)
	if tok == "" {
		if c.TokenFile != "" {
			return nil, fmt.Errorf("grpc token file %s is empty", c.TokenFile)
		}
		return nil, nil
	}
	return grpc.WithPerRPCCredentials(tokenCreds{header: "Bearer " + tok}), nil
}

// ClientOptions returns the dial options of a client: TLS when any TLS
// setting is given, and the bearer token when one is configured.
func ClientOptions(c ClientTLSConfig) ([]grpc.DialOption, error) {
	var opts []grpc.DialOption
	if c.Enabled() {
		o, err := WithClientTLS(c)
		if err != nil {
			return nil, err
		}
		opts = append(opts, o)
	}
	o, err := WithToken(c.Auth)
	if err != nil {
		return nil, err
	}
	if o != nil {
		opts = append(opts, o)
	}
	return opts, nil
}

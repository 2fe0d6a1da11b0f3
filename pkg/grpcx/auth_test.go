package grpcx

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/stockcast/stockcast/pkg/config"
	"github.com/stockcast/stockcast/pkg/telemetry"
)

const (
	readerSecret = "reader-secret-0123456789"
	adminSecret  = "admin-secret-abcdefghijkl"
	envSecret    = "env-secret-zyxwvutsrqpo"
)

// lockedBuffer collects log lines written from several goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func withBearer(ctx context.Context, v string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", v)
}

func TestBearerTokensAndRoles(t *testing.T) {
	dir := t.TempDir()
	adminHash := sha256.Sum256([]byte(adminSecret))
	tokens := writeFile(t, dir, "tokens", "# name roles secret\n"+
		"forecast-reader reader "+readerSecret+"\n"+
		"ops admin,reader sha256:"+hex.EncodeToString(adminHash[:])+"  # only the hash on disk\n")
	logs := &lockedBuffer{}
	tel := telemetry.NewForTest(logs)
	cfg := Config{Addr: "127.0.0.1:0", Auth: AuthConfig{
		TokensFile:  tokens,
		Tokens:      "from-env writer " + envSecret,
		MethodRoles: "/grpc.testing.TestService/EmptyCall=reader|writer, /grpc.testing.TestService/*=admin",
		// health stays public (the default of the flag), reflection not
		PublicHealth: true,
	}}
	svc := newTestService()
	close(svc.release)
	srv, _, _ := startServer(t, cfg, tel, svc)
	conn := dial(t, srv.Addr(), tel)
	client := testgrpc.NewTestServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	empty := func(ctx context.Context) error {
		_, err := client.EmptyCall(ctx, &testgrpc.Empty{})
		if err == nil {
			<-svc.traceIDs
		}
		return err
	}
	unimplemented := func(ctx context.Context) error {
		_, err := client.UnimplementedCall(ctx, &testgrpc.Empty{})
		return err
	}
	reflect := func(ctx context.Context) error {
		stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
		if err != nil {
			return err
		}
		// Send reports io.EOF when the server has already ended the stream
		// (as it does when it refuses the call); Recv then returns the status.
		if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil && err != io.EOF {
			return err
		}
		_, err = stream.Recv()
		stream.CloseSend()
		return err
	}
	health := func(ctx context.Context) error { _, err := healthStatus(ctx, conn, ""); return err }

	tests := []struct {
		name string
		auth string // authorization header; "" sends none
		call func(context.Context) error
		want codes.Code
	}{
		{"no token", "", empty, codes.Unauthenticated},
		{"unknown token", "Bearer not-a-known-token-at-all", empty, codes.Unauthenticated},
		{"basic scheme", "Basic " + readerSecret, empty, codes.Unauthenticated},
		{"bearer without token", "Bearer ", empty, codes.Unauthenticated},
		{"hash instead of the token", "Bearer sha256:" + hex.EncodeToString(adminHash[:]), empty, codes.Unauthenticated},
		{"reader calls a reader method", "Bearer " + readerSecret, empty, codes.OK},
		{"lower-case scheme", "bearer " + readerSecret, empty, codes.OK},
		{"token from the environment", "Bearer " + envSecret, empty, codes.OK},
		{"reader calls an admin method", "Bearer " + readerSecret, unimplemented, codes.PermissionDenied},
		{"writer calls an admin method", "Bearer " + envSecret, unimplemented, codes.PermissionDenied},
		// The admin token passes authorization; the method itself is not implemented.
		{"admin (hashed on disk) calls an admin method", "Bearer " + adminSecret, unimplemented, codes.Unimplemented},
		{"admin calls a reader method", "Bearer " + adminSecret, empty, codes.OK},
		{"health is public", "", health, codes.OK},
		{"reflection needs a token", "", reflect, codes.Unauthenticated},
		// No rule covers reflection: deny by default.
		{"reflection with a token but no rule", "Bearer " + adminSecret, reflect, codes.PermissionDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ctx
			if tt.auth != "" {
				c = withBearer(ctx, tt.auth)
			}
			if got := status.Code(tt.call(c)); got != tt.want {
				t.Fatalf("code %v, want %v", got, tt.want)
			}
		})
	}

	// Clients send tokens from a file or the environment with ClientOptions.
	tokenFile := writeFile(t, dir, "client-token", readerSecret+"\n")
	for _, c := range []ClientTLSConfig{{Auth: ClientAuthConfig{TokenFile: tokenFile}}, {Auth: ClientAuthConfig{Token: envSecret}}} {
		opts, err := ClientOptions(c)
		if err != nil || len(opts) != 1 {
			t.Fatalf("ClientOptions(%+v) = %d options, %v", c, len(opts), err)
		}
		if err := func() error {
			_, err := testgrpc.NewTestServiceClient(dial(t, srv.Addr(), tel, opts...)).EmptyCall(ctx, &testgrpc.Empty{})
			if err == nil {
				<-svc.traceIDs
			}
			return err
		}(); err != nil {
			t.Fatalf("call with the token of %+v: %v", c.Auth.TokenFile, err)
		}
	}
	if opts, err := ClientOptions(ClientTLSConfig{}); err != nil || len(opts) != 0 {
		t.Fatalf("ClientOptions without settings = %d options, %v", len(opts), err)
	}
	if _, err := ClientOptions(ClientTLSConfig{Auth: ClientAuthConfig{TokenFile: writeFile(t, dir, "empty", "\n")}}); err == nil {
		t.Fatal("an empty token file is accepted")
	}

	for _, secret := range []string{readerSecret, adminSecret, envSecret} {
		if strings.Contains(logs.String(), secret) {
			t.Fatalf("a secret is in the logs:\n%s", logs.String())
		}
	}
	if !strings.Contains(logs.String(), "forecast-reader") || !strings.Contains(logs.String(), "plaintext") {
		t.Fatalf("the start log does not name the tokens or warn about plaintext:\n%s", logs.String())
	}
}

func TestHealthNotPublic(t *testing.T) {
	tel := telemetry.NewDiscard()
	srv, _, _ := startServer(t, Config{Addr: "127.0.0.1:0", Auth: AuthConfig{Tokens: "probe reader " + readerSecret}}, tel, newTestService())
	conn := dial(t, srv.Addr(), tel)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := healthStatus(ctx, conn, ""); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("health without a token: %v, want Unauthenticated", err)
	}
	// Without method rules every valid token may call every method.
	if st, err := healthStatus(withBearer(ctx, "Bearer "+readerSecret), conn, ""); err != nil || st != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health with a token: %v, %v", st, err)
	}
}

func TestAuthConfigErrorsDoNotShowSecrets(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		cfg  AuthConfig
		want string
	}{
		{"two fields", AuthConfig{Tokens: "ops " + adminSecret}, "want <name> <roles> <secret>"},
		{"short secret", AuthConfig{Tokens: "ops admin xyz123"}, "shorter than 16 bytes"},
		{"bad hash", AuthConfig{Tokens: "ops admin sha256:" + adminSecret}, "64 hex digits"},
		{"name twice", AuthConfig{Tokens: "ops admin " + adminSecret + "; ops reader " + readerSecret}, `"ops" twice`},
		{"missing file", AuthConfig{TokensFile: filepath.Join(dir, "none")}, "read grpc auth tokens file"},
		{"only comments", AuthConfig{TokensFile: writeFile(t, dir, "comments", "# nothing\n\n")}, "none found"},
		{"bad rule", AuthConfig{Tokens: "ops admin " + adminSecret, MethodRoles: "EmptyCall=admin"}, "want <method|/service/*|*>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := (&Config{Addr: "127.0.0.1:0", Auth: tt.cfg}).Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v, want an error with %q", err, tt.want)
			}
			for _, secret := range []string{adminSecret, readerSecret, "xyz123"} {
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("the error shows a secret: %v", err)
				}
			}
		})
	}
}

func TestFlagsPrintWithoutSecrets(t *testing.T) {
	fs := flag.NewFlagSet("svc", flag.ContinueOnError)
	var srv Config
	var client ClientTLSConfig
	srv.RegisterFlags(fs, "grpc.")
	client.RegisterFlags(fs, "feature.")
	env := map[string]string{"STOCKCAST_GRPC_AUTH_TOKENS": "ops admin " + adminSecret, "STOCKCAST_FEATURE_TOKEN": envSecret}
	if err := config.Parse(fs, []string{"-grpc.max-send-bytes", "1024"}, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if srv.Auth.Tokens != "ops admin "+adminSecret || client.Auth.Token != envSecret || srv.MaxSendBytes != 1024 ||
		!srv.Auth.PublicHealth || srv.Auth.PublicReflection || srv.MaxRecvBytes != 16<<20 {
		t.Fatalf("parsed %+v and %+v", srv, client)
	}
	var out bytes.Buffer
	config.Print(&out, fs)
	for _, want := range []string{"grpc.auth.tokens=***", "feature.token=***", "grpc.max-send-bytes=1024", "grpc.auth.public-health=true"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("config print lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), adminSecret) || strings.Contains(out.String(), envSecret) {
		t.Fatalf("config print shows a secret:\n%s", out.String())
	}
}

func TestMessageSizeLimits(t *testing.T) {
	tel := telemetry.NewDiscard()
	svc := newTestService()
	close(svc.release)
	srv, _, _ := startServer(t, Config{Addr: "127.0.0.1:0", MaxRecvBytes: 1 << 10, MaxSendBytes: 512}, tel, svc)
	client := testgrpc.NewTestServiceClient(dial(t, srv.Addr(), tel))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	call := func(n int) error {
		_, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{Payload: &testgrpc.Payload{Body: make([]byte, n)}})
		return err
	}
	if err := call(400); err != nil {
		t.Fatalf("400-byte echo: %v", err)
	}
	// The request fits (< 1 KiB) but the echoed response does not (> 512 bytes).
	if err := call(600); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("600-byte echo: %v, want ResourceExhausted from the send limit", err)
	}
	if err := call(2 << 10); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("2 KiB request: %v, want ResourceExhausted from the receive limit", err)
	}
}

// TestMutualTLSRefusesOtherCAs: a client certificate that another CA
// signed is refused, and a client that does not trust the server's CA
// does not connect.
func TestMutualTLSRefusesOtherCAs(t *testing.T) {
	dir := t.TempDir()
	ca, rogue := newCA(t), newCA(t)
	serverCert, serverKey := ca.issue(t, dir, "server", true)
	rogueCert, rogueKey := rogue.issue(t, dir, "rogue", false)
	goodCert, goodKey := ca.issue(t, dir, "client", false)
	caFile, rogueCA := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "rogue-ca.pem")
	writePEM(t, caFile, "CERTIFICATE", ca.der)
	writePEM(t, rogueCA, "CERTIFICATE", rogue.der)

	tel := telemetry.NewDiscard()
	srv, _, _ := startServer(t, Config{Addr: "127.0.0.1:0", CertFile: serverCert, KeyFile: serverKey, ClientCAFile: caFile,
		Auth: AuthConfig{Tokens: "ops admin " + adminSecret}}, tel, newTestService())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tt := range []struct {
		name string
		tls  ClientTLSConfig
		want codes.Code
	}{
		{"certificate of another CA", ClientTLSConfig{CAFile: caFile, CertFile: rogueCert, KeyFile: rogueKey, Auth: ClientAuthConfig{Token: adminSecret}}, codes.Unavailable},
		{"server not trusted", ClientTLSConfig{CAFile: rogueCA, CertFile: goodCert, KeyFile: goodKey, Auth: ClientAuthConfig{Token: adminSecret}}, codes.Unavailable},
		{"good certificate, no token", ClientTLSConfig{CAFile: caFile, CertFile: goodCert, KeyFile: goodKey}, codes.Unauthenticated},
		{"good certificate and token", ClientTLSConfig{CAFile: caFile, CertFile: goodCert, KeyFile: goodKey, Auth: ClientAuthConfig{Token: adminSecret}}, codes.Unimplemented},
	} {
		t.Run(tt.name, func(t *testing.T) {
			opts, err := ClientOptions(tt.tls)
			if err != nil {
				t.Fatal(err)
			}
			conn, err := grpc.NewClient(srv.Addr(), opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_, err = testgrpc.NewTestServiceClient(conn).UnimplementedCall(ctx, &testgrpc.Empty{})
			if got := status.Code(err); got != tt.want {
				t.Fatalf("code %v (%v), want %v", got, err, tt.want)
			}
		})
	}
}

package grpcx

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/stockcast/stockcast/pkg/telemetry"
)

// testService answers EmptyCall with nothing, remembering the caller's trace,
// and blocks UnaryCall until release is closed.
type testService struct {
	testgrpc.UnimplementedTestServiceServer
	traceIDs chan string
	started  chan struct{}
	release  chan struct{}
}

func newTestService() *testService {
	return &testService{traceIDs: make(chan string, 10), started: make(chan struct{}, 10), release: make(chan struct{})}
}

func (s *testService) EmptyCall(ctx context.Context, _ *testgrpc.Empty) (*testgrpc.Empty, error) {
	s.traceIDs <- trace.SpanContextFromContext(ctx).TraceID().String()
	return &testgrpc.Empty{}, nil
}

func (s *testService) UnaryCall(ctx context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	s.started <- struct{}{}
	<-s.release
	return &testgrpc.SimpleResponse{Payload: req.GetPayload()}, nil
}

// startServer runs a server until the test ends and returns it with the
// channel Run's result arrives on after cancel is called.
func startServer(t *testing.T, cfg Config, tel *telemetry.Telemetry, svc *testService) (*Server, context.CancelFunc, <-chan error) {
	t.Helper()
	srv, err := NewServer(cfg, tel)
	if err != nil {
		t.Fatal(err)
	}
	testgrpc.RegisterTestServiceServer(srv.GRPC(), svc)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- srv.Run(ctx) }()
	t.Cleanup(cancel)
	deadline := time.Now().Add(5 * time.Second)
	for srv.Addr() == "" {
		if time.Now().After(deadline) {
			t.Fatal("server did not listen")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return srv, cancel, errc
}

func dial(t *testing.T, target string, tel *telemetry.Telemetry, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	conn, err := Dial(target, tel, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func healthStatus(ctx context.Context, conn *grpc.ClientConn, service string) (healthpb.HealthCheckResponse_ServingStatus, error) {
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	return resp.GetStatus(), err
}

func TestServerHealthReflectionTracing(t *testing.T) {
	tel := telemetry.NewForTest(t.Output())
	svc := newTestService()
	srv, cancel, errc := startServer(t, Config{Addr: "127.0.0.1:0", MaxRecvBytes: 1 << 10}, tel, svc)
	conn := dial(t, srv.Addr(), tel)
	ctx := context.Background()

	for _, name := range []string{"", "grpc.testing.TestService"} {
		if st, err := healthStatus(ctx, conn, name); err != nil || st != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health %q = %v, %v; want SERVING", name, st, err)
		}
	}
	srv.SetServing(false)
	if st, _ := healthStatus(ctx, conn, ""); st != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("after SetServing(false): %v", st)
	}
	srv.SetServing(true)

	// Reflection lists our services.
	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	for _, want := range []string{"grpc.health.v1.Health", "grpc.testing.TestService"} {
		if !slices.Contains(names, want) {
			t.Errorf("reflection lists %v, missing %s", names, want)
		}
	}
	stream.CloseSend()

	// The caller's trace reaches the handler.
	spanCtx, span := tel.Tracer.Tracer("test").Start(ctx, "call")
	if _, err := testgrpc.NewTestServiceClient(conn).EmptyCall(spanCtx, &testgrpc.Empty{}); err != nil {
		t.Fatal(err)
	}
	span.End()
	if got := <-svc.traceIDs; got != span.SpanContext().TraceID().String() {
		t.Fatalf("handler saw trace %s, want %s", got, span.SpanContext().TraceID())
	}

	// Requests above MaxRecvBytes are refused.
	_, err = testgrpc.NewTestServiceClient(conn).UnaryCall(ctx, &testgrpc.SimpleRequest{Payload: &testgrpc.Payload{Body: make([]byte, 2<<10)}})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("oversized request: %v, want ResourceExhausted", err)
	}

	// otelgrpc records server metrics on our registry.
	if n, err := telemetry.MetricValue(tel.Registry, "rpc_server_call_duration_seconds", nil); err != nil || n < 1 {
		t.Errorf("rpc_server_call_duration_seconds count = %v, %v; want the calls above", n, err)
	}

	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
}

func TestGracefulStopWaitsForInflight(t *testing.T) {
	tel := telemetry.NewDiscard()
	svc := newTestService()
	srv, cancel, errc := startServer(t, Config{Addr: "127.0.0.1:0"}, tel, svc)
	conn := dial(t, srv.Addr(), tel)

	callErr := make(chan error, 1)
	go func() {
		resp, err := testgrpc.NewTestServiceClient(conn).UnaryCall(context.Background(),
			&testgrpc.SimpleRequest{Payload: &testgrpc.Payload{Body: []byte("x")}})
		if err == nil && string(resp.GetPayload().GetBody()) != "x" {
			err = status.Error(codes.Internal, "wrong payload")
		}
		callErr <- err
	}()
	<-svc.started
	cancel()
	select {
	case err := <-errc:
		t.Fatalf("Run returned %v while an RPC was in flight", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(svc.release)
	if err := <-callErr; err != nil {
		t.Fatalf("in-flight RPC failed during graceful stop: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
}

func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t)
	serverCert, serverKey := ca.issue(t, dir, "server", true)
	clientCert, clientKey := ca.issue(t, dir, "client", false)
	caFile := filepath.Join(dir, "ca.pem")
	writePEM(t, caFile, "CERTIFICATE", ca.der)

	tel := telemetry.NewDiscard()
	srv, _, _ := startServer(t, Config{Addr: "127.0.0.1:0", CertFile: serverCert, KeyFile: serverKey, ClientCAFile: caFile}, tel, newTestService())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	tests := []struct {
		name   string
		tls    *ClientTLSConfig // nil: plaintext
		wantOK bool
	}{
		{name: "plaintext refused", tls: nil},
		{name: "no client certificate refused", tls: &ClientTLSConfig{CAFile: caFile}},
		{name: "client certificate accepted", tls: &ClientTLSConfig{CAFile: caFile, CertFile: clientCert, KeyFile: clientKey}, wantOK: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opts []grpc.DialOption
			if tt.tls != nil {
				opt, err := WithClientTLS(*tt.tls)
				if err != nil {
					t.Fatal(err)
				}
				opts = append(opts, opt)
			}
			conn := dial(t, srv.Addr(), tel, opts...)
			_, err := healthStatus(ctx, conn, "")
			if (err == nil) != tt.wantOK {
				t.Fatalf("health check err = %v, want ok=%v", err, tt.wantOK)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr bool
	}{
		{"plaintext", Config{Addr: "127.0.0.1:0"}, false},
		{"bad addr", Config{Addr: "nope"}, true},
		{"cert without key", Config{Addr: ":1", CertFile: "c"}, true},
		{"client ca without cert", Config{Addr: ":1", ClientCAFile: "ca"}, true},
	}
	for _, tt := range tests {
		if err := tt.cfg.Validate(); (err != nil) != tt.wantErr {
			t.Errorf("%s: Validate() = %v, wantErr %v", tt.name, err, tt.wantErr)
		}
	}
}

type testCA struct {
	serial int64
	der    []byte
	cert   *x509.Certificate
	key    *ecdsa.PrivateKey
}

func newCA(t *testing.T) *testCA {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{der: der, cert: cert, key: key}
}

func (ca *testCA) issue(t *testing.T, dir, name string, server bool) (certFile, keyFile string) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca.serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(ca.serial + 1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", keyDER)
	return certFile, keyFile
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Listen binds before Run: a call made between the two (after a service
// reported ready) waits for Run instead of being refused, and is served.
// A taken address fails Listen itself.
func TestListenBeforeRun(t *testing.T) {
	tel := telemetry.NewForTest(t.Output())
	srv, err := NewServer(Config{Addr: "127.0.0.1:0"}, tel)
	if err != nil {
		t.Fatal(err)
	}
	testgrpc.RegisterTestServiceServer(srv.GRPC(), newTestService())
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	addr := srv.Addr()
	if addr == "" {
		t.Fatal("Addr is empty after Listen")
	}
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("connect after Listen, before Run: %v", err)
	}
	c.Close()

	conn := dial(t, addr, tel)
	called := make(chan error, 1)
	go func() {
		_, err := testgrpc.NewTestServiceClient(conn).EmptyCall(context.Background(), &testgrpc.Empty{}, grpc.WaitForReady(true))
		called <- err
	}()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- srv.Run(ctx) }()
	select {
	case err := <-called:
		if err != nil {
			t.Fatalf("call made before Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("call made before Run never answered")
	}
	if srv.Addr() != addr {
		t.Errorf("Run listened on %s, want Listen's %s", srv.Addr(), addr)
	}

	other, err := NewServer(Config{Addr: addr}, tel)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Listen(); err == nil {
		t.Errorf("Listen on the taken %s succeeded", addr)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
}

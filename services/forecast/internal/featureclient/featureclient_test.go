package featureclient

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
	"reflect"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stockcast/stockcast/pkg/forecasting"
	"github.com/stockcast/stockcast/pkg/grpcx"
	"github.com/stockcast/stockcast/pkg/telemetry"
	"github.com/stockcast/stockcast/pkg/testenv"
	featurev1 "github.com/stockcast/stockcast/proto/stockcast/feature/v1"
	"github.com/stockcast/stockcast/services/forecast/internal/scoring"
)

// historyServer serves one stored series over the FeatureService API.
type historyServer struct {
	featurev1.UnimplementedFeatureServiceServer
}

func (historyServer) GetFeatures(_ context.Context, req *featurev1.GetFeaturesRequest) (*featurev1.GetFeaturesResponse, error) {
	if req.GetSku() != "SKU1" || req.GetLocation() != "S1" {
		return nil, status.Error(codes.NotFound, "no such series")
	}
	return &featurev1.GetFeaturesResponse{History: []*featurev1.DailyDemand{
		{Day: "2026-01-01", Quantity: 3},
		{Day: "2026-01-02", Quantity: 0, Stockout: true},
	}}, nil
}

// TestDialTLS: with -feature.tls-ca the client reaches a TLS feature server
// and reads the history; without the CA (plaintext, or TLS trusting another
// CA) the call fails.
func TestDialTLS(t *testing.T) {
	dir := t.TempDir()
	caFile := writeCA(t, dir, "ca")
	certFile, keyFile := issueServerCert(t, dir)
	otherCA := writeCA(t, dir, "other-ca")

	srv, err := grpcx.NewServer(grpcx.Config{Addr: "127.0.0.1:0", CertFile: certFile, KeyFile: keyFile}, telemetry.NewDiscard())
	if err != nil {
		t.Fatal(err)
	}
	featurev1.RegisterFeatureServiceServer(srv.GRPC(), historyServer{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
	})
	testenv.Eventually(t, 10*time.Second, "server listening", func() bool { return srv.Addr() != "" })
	addr := srv.Addr()

	history := func(tlsCfg grpcx.ClientTLSConfig) ([]scoring.DailyDemand, error) {
		conn, err := Dial(addr, tlsCfg, telemetry.NewDiscard())
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer ccancel()
		return New(featurev1.NewFeatureServiceClient(conn)).History(cctx, "SKU1", "S1")
	}

	got, err := history(grpcx.ClientTLSConfig{CAFile: caFile})
	if err != nil {
		t.Fatalf("with the CA: %v", err)
	}
	d1, _ := forecasting.ParseDay("2026-01-01")
	d2, _ := forecasting.ParseDay("2026-01-02")
	want := []scoring.DailyDemand{{Day: d1, Quantity: 3}, {Day: d2, Quantity: 0, Stockout: true}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("history = %+v, want %+v", got, want)
	}
	if _, err := history(grpcx.ClientTLSConfig{}); err == nil {
		t.Fatal("plaintext client reached the TLS server")
	}
	if _, err := history(grpcx.ClientTLSConfig{CAFile: otherCA}); err == nil {
		t.Fatal("client trusting another CA reached the server")
	}
	if _, err := Dial(addr, grpcx.ClientTLSConfig{CAFile: filepath.Join(dir, "missing.pem")}, telemetry.NewDiscard()); err == nil {
		t.Fatal("Dial with a missing CA file returned no error")
	}
}

var (
	caKeys  = map[string]*ecdsa.PrivateKey{}
	caCerts = map[string]*x509.Certificate{}
)

// writeCA creates a self-signed CA named name and writes its certificate.
func writeCA(t *testing.T, dir, name string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
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
	caKeys[name], caCerts[name] = key, cert
	file := filepath.Join(dir, name+".pem")
	writePEM(t, file, "CERTIFICATE", der)
	return file
}

// issueServerCert issues a certificate for 127.0.0.1 signed by "ca".
func issueServerCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "feature"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCerts["ca"], &key.PublicKey, caKeys["ca"])
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "feature.pem"), filepath.Join(dir, "feature-key.pem")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", keyDER)
	return certFile, keyFile
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

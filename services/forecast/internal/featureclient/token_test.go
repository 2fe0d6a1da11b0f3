package featureclient

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stockcast/stockcast/pkg/grpcx"
	"github.com/stockcast/stockcast/pkg/telemetry"
	"github.com/stockcast/stockcast/pkg/testenv"
	featurev1 "github.com/stockcast/stockcast/proto/stockcast/feature/v1"
)

// TestDialSendsToken: a feature server that requires the "forecast" role
// answers the client that has the token in -feature.token-file, and
// refuses one without it.
func TestDialSendsToken(t *testing.T) {
	const secret = "forecast-to-feature-3c9d1e7a"
	srv, err := grpcx.NewServer(grpcx.Config{Addr: "127.0.0.1:0", Auth: grpcx.AuthConfig{
		Tokens: "forecast forecast " + secret, MethodRoles: "/stockcast.feature.v1.FeatureService/*=forecast",
	}}, telemetry.NewDiscard())
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

	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	history := func(cfg grpcx.ClientTLSConfig) error {
		conn, err := Dial(srv.Addr(), cfg, telemetry.NewDiscard())
		if err != nil {
			return err
		}
		defer conn.Close()
		cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer ccancel()
		_, err = New(featurev1.NewFeatureServiceClient(conn)).History(cctx, "SKU1", "S1")
		return err
	}
	if err := history(grpcx.ClientTLSConfig{Auth: grpcx.ClientAuthConfig{TokenFile: tokenFile}}); err != nil {
		t.Fatalf("with the token file: %v", err)
	}
	if err := history(grpcx.ClientTLSConfig{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("without a token: %v, want Unauthenticated", err)
	}
}

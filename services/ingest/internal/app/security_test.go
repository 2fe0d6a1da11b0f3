package app

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/stockcast/stockcast/pkg/testenv"
	ingestv1 "github.com/stockcast/stockcast/proto/stockcast/ingest/v1"
	ordersv1 "github.com/stockcast/stockcast/proto/stockcast/orders/v1"
)

const (
	writerToken = "platform-writer-7f3a9c2e51d8"
	readerToken = "dashboard-reader-0b6e4d19a7c3"
)

// securityEnv configures ingest's gRPC authentication the way a
// deployment does: tokens from the environment (a Kubernetes secret),
// roles per method.
func securityEnv(k string) string {
	return map[string]string{
		"STOCKCAST_GRPC_AUTH_TOKENS":       "platform writer " + writerToken + ";dashboard reader " + readerToken,
		"STOCKCAST_GRPC_AUTH_METHOD_ROLES": "/stockcast.ingest.v1.IngestService/*=writer",
	}[k]
}

func TestConfigPrintHidesTokens(t *testing.T) {
	var out bytes.Buffer
	if err := Run(context.Background(), []string{"-config.print"}, securityEnv, &out); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), writerToken) || strings.Contains(out.String(), readerToken) {
		t.Fatalf("config print shows a token:\n%s", out.String())
	}
	for _, want := range []string{"grpc.auth.tokens=***", "grpc.auth.method-roles=/stockcast.ingest.v1.IngestService/*=writer", "grpc.max-send-bytes="} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("config print lacks %q:\n%s", want, out.String())
		}
	}
}

// TestTokensEnforced runs ingest with tokens and roles on the real stores:
// no token is Unauthenticated, the reader's token PermissionDenied, the
// writer's token publishes; health stays public; no token reaches the logs.
func TestTokensEnforced(t *testing.T) {
	s := stores{brokers: testenv.Kafka(t), redis: testenv.Redis(t), ch: testenv.ClickHouse(t)}
	grpcAddr, adminAddr := testenv.FreeAddr(t), testenv.FreeAddr(t)
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, []string{
			"-kafka.brokers", strings.Join(s.brokers, ","), "-redis.addr", s.redis,
			"-clickhouse.addr", s.ch.Addr, "-clickhouse.database", s.ch.Database,
			"-grpc.addr", grpcAddr, "-admin.addr", adminAddr, "-log.level", "debug",
		}, securityEnv, logs)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		for _, tok := range []string{writerToken, readerToken} {
			if strings.Contains(logs.String(), tok) {
				t.Errorf("a token is in the logs:\n%s", logs.String())
			}
		}
		if t.Failed() {
			t.Logf("ingest logs:\n%s", logs.String())
		}
	}()
	testenv.Eventually(t, 60*time.Second, "ingest ready", func() bool {
		resp, err := http.Get("http://" + adminAddr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		// Ready comes before the gRPC server listens (app.Run).
		return resp.StatusCode == http.StatusOK && listening(grpcAddr)
	})

	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer ccancel()
	if resp, err := healthpb.NewHealthClient(conn).Check(cctx, &healthpb.HealthCheckRequest{}); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health without a token: %v, %v", resp, err)
	}
	client := ingestv1.NewIngestServiceClient(conn)
	req := &ingestv1.PublishOrderLinesRequest{Events: []*ordersv1.OrderLineEvent{orderLine("sec-1", "85123A", placed, 2)}}
	for _, tt := range []struct {
		name, auth string
		want       codes.Code
	}{
		{"no token", "", codes.Unauthenticated},
		{"wrong token", "Bearer " + strings.ToUpper(writerToken), codes.Unauthenticated},
		{"reader token", "Bearer " + readerToken, codes.PermissionDenied},
		{"writer token", "Bearer " + writerToken, codes.OK},
	} {
		c := cctx
		if tt.auth != "" {
			c = metadata.AppendToOutgoingContext(cctx, "authorization", tt.auth)
		}
		resp, err := client.PublishOrderLines(c, req)
		if got := status.Code(err); got != tt.want {
			t.Fatalf("%s: %v, want %v", tt.name, err, tt.want)
		}
		if tt.want == codes.OK && resp.GetResult().GetAccepted() != 1 {
			t.Fatalf("%s: result %v, want 1 accepted", tt.name, resp.GetResult())
		}
	}
}

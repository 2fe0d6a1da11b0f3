package config

import (
	"bytes"
	"flag"
	"strings"
	"testing"
)

func newFlags() (*flag.FlagSet, *string, *int, *[]string, *string) {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	addr := fs.String("grpc.addr", "127.0.0.1:9000", "")
	parts := fs.Int("kafka.partitions", 6, "")
	var brokers []string
	StringsVar(fs, &brokers, "kafka.brokers", []string{"localhost:9092"}, "")
	pw := fs.String("clickhouse.password", "", "")
	return fs, addr, parts, &brokers, pw
}

func TestApplyEnv(t *testing.T) {
	tests := []struct {
		name        string
		args        []string
		env         map[string]string
		wantAddr    string
		wantParts   int
		wantBrokers string
		wantErr     bool
	}{
		{name: "defaults", wantAddr: "127.0.0.1:9000", wantParts: 6, wantBrokers: "localhost:9092"},
		{
			name:     "env fills unset flags",
			env:      map[string]string{"STOCKCAST_GRPC_ADDR": ":1", "STOCKCAST_KAFKA_PARTITIONS": "3", "STOCKCAST_KAFKA_BROKERS": "a:1, b:2"},
			wantAddr: ":1", wantParts: 3, wantBrokers: "a:1,b:2",
		},
		{
			name:     "flag wins over env",
			args:     []string{"-grpc.addr", ":2", "-kafka.brokers", "c:3"},
			env:      map[string]string{"STOCKCAST_GRPC_ADDR": ":1", "STOCKCAST_KAFKA_BROKERS": "a:1"},
			wantAddr: ":2", wantParts: 6, wantBrokers: "c:3",
		},
		{
			name:    "bad env value",
			env:     map[string]string{"STOCKCAST_KAFKA_PARTITIONS": "many"},
			wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, addr, parts, brokers, _ := newFlags()
			err := Parse(fs, tt.args, func(k string) string { return tt.env[k] })
			if tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), "STOCKCAST_KAFKA_PARTITIONS") {
					t.Fatalf("err = %v, want an error naming the variable", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if *addr != tt.wantAddr || *parts != tt.wantParts || strings.Join(*brokers, ",") != tt.wantBrokers {
				t.Fatalf("got addr=%q parts=%d brokers=%q", *addr, *parts, strings.Join(*brokers, ","))
			}
		})
	}
}

func TestEnvName(t *testing.T) {
	if got := EnvName("ingest.dedup-ttl"); got != "STOCKCAST_INGEST_DEDUP_TTL" {
		t.Fatalf("EnvName = %q", got)
	}
}

func TestPrintMasksSecrets(t *testing.T) {
	fs, _, _, _, _ := newFlags()
	if err := Parse(fs, []string{"-clickhouse.password", "hunter2"}, func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	Print(&buf, fs)
	want := "clickhouse.password=***\ngrpc.addr=127.0.0.1:9000\nkafka.brokers=localhost:9092\nkafka.partitions=6\n"
	if buf.String() != want {
		t.Fatalf("Print =\n%s\nwant\n%s", buf.String(), want)
	}
}

package kafkax

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// EmbeddedConfig configures StartEmbedded.
type EmbeddedConfig struct {
	Addr       string // 127.0.0.1:port; port 0 or an empty Addr picks a free port
	DataDir    string // when set, topics, records and group offsets persist there across restarts
	Partitions int    // default partitions of created topics; 0 means 6
	// Logger, when set, gets the broker's warnings and errors (e.g. "txn
	// timeout abort": a transaction open longer than its timeout).
	Logger *slog.Logger
}

// kfakeLogger forwards kfake's warnings and errors to slog.
type kfakeLogger struct{ log *slog.Logger }

func (l kfakeLogger) Logf(level kfake.LogLevel, format string, args ...any) {
	if strings.HasPrefix(format, "txn: EndTxn slow") {
		// Every EndTxn above 5 ms inside the broker, many a minute on a
		// loaded machine; the consumer logs transactions open long itself.
		return
	}
	sl := slog.LevelWarn
	switch level {
	case kfake.LogLevelError:
		sl = slog.LevelError
	case kfake.LogLevelWarn:
	default:
		return
	}
	l.log.Log(context.Background(), sl, "kafka broker: "+fmt.Sprintf(format, args...))
}

// Embedded is a single in-process Kafka broker (franz-go's kfake).
type Embedded struct {
	cluster *kfake.Cluster
}

// StartEmbedded starts the broker; it listens on loopback only.
func StartEmbedded(cfg EmbeddedConfig) (*Embedded, error) {
	port := 0
	if cfg.Addr != "" {
		host, p, err := net.SplitHostPort(cfg.Addr)
		if err != nil {
			return nil, fmt.Errorf("parse embedded kafka address %q: %w", cfg.Addr, err)
		}
		if host != "" && host != "127.0.0.1" && host != "localhost" {
			return nil, fmt.Errorf("embedded kafka address %q: only 127.0.0.1 is supported", cfg.Addr)
		}
		if port, err = strconv.Atoi(p); err != nil {
			return nil, fmt.Errorf("parse embedded kafka port %q: %w", p, err)
		}
	}
	if cfg.Partitions == 0 {
		cfg.Partitions = 6
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(port), // kfake listens on 127.0.0.1; port 0 lets the OS choose
		kfake.DefaultNumPartitions(cfg.Partitions),
		// Tests use short sessions (a stopped consumer's partitions move fast).
		kfake.GroupMinSessionTimeout(100 * time.Millisecond),
	}
	if cfg.DataDir != "" {
		opts = append(opts, kfake.DataDir(cfg.DataDir))
	}
	if cfg.Logger != nil {
		opts = append(opts, kfake.WithLogger(kfakeLogger{cfg.Logger}))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start embedded kafka on %q (data %q): %w", cfg.Addr, cfg.DataDir, err)
	}
	return &Embedded{cluster: c}, nil
}

// Brokers returns the broker addresses to give to Config.Brokers.
func (e *Embedded) Brokers() []string { return e.cluster.ListenAddrs() }

// Close stops the broker, writing its state to DataDir when set.
func (e *Embedded) Close() { e.cluster.Close() }

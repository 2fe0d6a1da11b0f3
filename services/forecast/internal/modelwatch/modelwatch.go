// Package modelwatch hot-loads the global model the forecast service
// combines with the per-series ensemble: it polls the model registry's
// champion (or one artefact file) and, when it changes, loads the artefact
// and swaps it into the scorer atomically. A load that fails (a missing,
// truncated or corrupt artefact, features of another build) keeps the
// model in use, is logged and counted; it is tried again only when the
// champion changes again (or its file does). Without any model the
// service scores with the ensemble alone.
package modelwatch

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/stockcast/stockcast/pkg/modelregistry"
	"github.com/stockcast/stockcast/services/forecast/internal/scoring"
)

// Sources of the model.
const (
	SourceRegistry = "registry" // the champion of ClickHouse table models
	SourceFile     = "file"     // one artefact file (-model.file), reloaded when it changes
	SourceNone     = "none"     // the ensemble alone
)

// Config configures the watcher.
type Config struct {
	Source   string
	File     string
	Interval time.Duration
	Weight   float64
}

// RegisterFlags registers the -model.* flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Source, "model.source", SourceRegistry, "global model to combine with the ensemble: registry (the champion in ClickHouse table models), file (-model.file) or none")
	fs.StringVar(&c.File, "model.file", "", "artefact of `stockcast train` to load with -model.source file")
	fs.DurationVar(&c.Interval, "model.poll-interval", 30*time.Second, "how often the champion (or the file) is checked for a new model")
	fs.Float64Var(&c.Weight, "model.weight", scoring.DefaultGlobalWeight, "the global model's weight in the combined daily means, (0, 1]")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	var errs []error
	switch c.Source {
	case SourceRegistry, SourceNone:
	case SourceFile:
		if c.File == "" {
			errs = append(errs, errors.New("model file: none given for -model.source file"))
		}
	default:
		errs = append(errs, fmt.Errorf("model source %q: want registry, file or none", c.Source))
	}
	if c.Interval <= 0 {
		errs = append(errs, fmt.Errorf("model poll interval %v: want > 0", c.Interval))
	}
	if !(c.Weight > 0 && c.Weight <= 1) {
		errs = append(errs, fmt.Errorf("model weight %v: want (0, 1]", c.Weight))
	}
	return errors.Join(errs...)
}

// Champions says which artefact is the champion (the model registry).
type Champions interface {
	Champion(ctx context.Context) (modelregistry.Model, bool, error)
}

// Target receives the loaded models (the scorer).
type Target interface {
	SetModel(*scoring.Model)
}

// Stats counts the watcher's work, for metrics and tests.
type Stats struct {
	Loads    int64 // models loaded and swapped in
	Failures int64 // loads that failed (the previous model kept)
	Polls    int64
}

// Watcher polls for the champion and swaps it in.
type Watcher struct {
	cfg    Config
	reg    Champions
	target Target
	log    *slog.Logger

	mu      sync.Mutex
	current string // key of the model in use ("" none)
	failed  string // key of the last failed load
	version string
	stats   Stats
}

// New returns a Watcher; reg may be nil unless the source is the registry.
func New(cfg Config, reg Champions, target Target, log *slog.Logger) *Watcher {
	return &Watcher{cfg: cfg, reg: reg, target: target, log: log}
}

// Stats returns the counters so far.
func (w *Watcher) Stats() Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stats
}

// Version returns the version of the model in use ("" none).
func (w *Watcher) Version() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.version
}

// Run polls until ctx is done. A failed poll (registry unreachable) is
// logged and retried at the next tick; it never stops the service.
func (w *Watcher) Run(ctx context.Context) error {
	if w.cfg.Source == SourceNone {
		return nil
	}
	t := time.NewTicker(w.cfg.Interval)
	defer t.Stop()
	for {
		if err := w.Poll(ctx); err != nil && ctx.Err() == nil {
			w.log.Warn("check for a new global model", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Poll checks once and loads the champion if it changed. It returns an
// error only when the champion could not be asked for; a failed load is
// counted and logged, and the model in use kept.
func (w *Watcher) Poll(ctx context.Context) error {
	w.mu.Lock()
	w.stats.Polls++
	w.mu.Unlock()
	var path, key, version string
	switch w.cfg.Source {
	case SourceNone:
		return nil
	case SourceFile:
		fi, err := os.Stat(w.cfg.File)
		if err != nil {
			w.fail(w.cfg.File+"|missing", w.cfg.File, "", err)
			return nil
		}
		path, key = w.cfg.File, fmt.Sprintf("%s|%d|%d", w.cfg.File, fi.ModTime().UnixNano(), fi.Size())
	default:
		c, ok, err := w.reg.Champion(ctx)
		if err != nil {
			return err
		}
		if !ok {
			return nil // no champion yet: the ensemble alone
		}
		fi, err := os.Stat(c.Artefact)
		mod := ""
		if err == nil {
			mod = fmt.Sprintf("|%d|%d", fi.ModTime().UnixNano(), fi.Size())
		}
		path, key, version = c.Artefact, c.Version+"|"+c.Artefact+mod, c.Version
	}
	w.mu.Lock()
	same := key == w.current || key == w.failed
	w.mu.Unlock()
	if same {
		return nil
	}
	m, err := scoring.LoadModel(path, w.cfg.Weight)
	if err == nil && version != "" && m.Version != version {
		err = fmt.Errorf("artefact %s holds model %s, the registry says %s", path, m.Version, version)
	}
	if err != nil {
		w.fail(key, path, version, err)
		return nil
	}
	w.target.SetModel(m)
	w.mu.Lock()
	previous := w.version
	w.current, w.failed, w.version = key, "", m.Version
	w.stats.Loads++
	w.mu.Unlock()
	w.log.Info("global model loaded", "version", m.Version, "artefact", path, "previous", previous, "weight", m.Weight)
	return nil
}

func (w *Watcher) fail(key, path, version string, err error) {
	w.mu.Lock()
	w.failed = key
	w.stats.Failures++
	kept := w.version
	w.mu.Unlock()
	w.log.Error("global model not loaded: keeping the model in use", "artefact", path, "version", version, "kept", kept, "err", err)
}

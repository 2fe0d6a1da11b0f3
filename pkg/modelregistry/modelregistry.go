// Package modelregistry records every training run of the global model in
// ClickHouse table models and says which one is the champion, the model
// the forecast service scores with. `stockcast train` writes it; the
// forecast service polls Champion; the console lists it.
//
// Each model is one row per version in a ReplacingMergeTree: a change of
// status (promotion, retirement) inserts the version's row again with a
// higher revision, and reads take the latest row of each version (FINAL).
// A promotion writes the new champion and the retired old one in one
// INSERT, which ClickHouse applies atomically (one block, one partition).
// The SQL runs on ClickHouse 18.16 and current releases.
package modelregistry

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Status of a model.
const (
	StatusChampion   = "champion"   // the model the service scores with
	StatusChallenger = "challenger" // trained, not promoted
	StatusRetired    = "retired"    // a former champion
)

// Schema creates table models. updated_at is the time of the row's last
// change (seconds); revision orders changes within one second, so the
// replacing version is revision, not updated_at.
var Schema = []string{
	`CREATE TABLE IF NOT EXISTS models (
		version String,
		created_at DateTime('UTC'),
		updated_at DateTime('UTC'),
		revision UInt64,
		status String,
		data_set String,
		artefact String,
		wrmsse Float64,
		wspl Float64,
		mase Float64,
		bias Float64,
		coverage50 Float64,
		coverage90 Float64,
		coverage98 Float64,
		champion_version String,
		champion_wrmsse Float64,
		train_seconds Float64,
		metrics_json String
	) ENGINE = ReplacingMergeTree(revision)
	ORDER BY version`,
}

const (
	columns = `version, created_at, updated_at, revision, status, data_set, artefact, wrmsse, wspl, mase, bias,
		coverage50, coverage90, coverage98, champion_version, champion_wrmsse, train_seconds, metrics_json`
	insertModels = `INSERT INTO models (` + columns + `)`
)

// Model is one training run.
type Model struct {
	Version   string
	CreatedAt time.Time
	UpdatedAt time.Time
	Status    string
	DataSet   string
	// Artefact is the path (or URI) of the artefact file.
	Artefact string
	// Metrics of the model's backtest on the held-out days.
	WRMSSE, WSPL, MASE, Bias           float64
	Coverage50, Coverage90, Coverage98 float64
	// ChampionVersion and ChampionWRMSSE are the champion it was compared
	// with on the same days ("" and NaN when there was none).
	ChampionVersion string
	ChampionWRMSSE  float64
	TrainSeconds    float64
	// MetricsJSON holds every metric of the run as a JSON object.
	MetricsJSON string
}

// Registry reads and writes table models.
type Registry struct {
	conn driver.Conn
	now  func() time.Time

	mu       sync.Mutex
	revision uint64
}

// New returns a Registry on conn; the table must exist (Migrate).
func New(conn driver.Conn) *Registry {
	return &Registry{conn: conn, now: time.Now}
}

// Migrate creates the table if it is missing.
func Migrate(ctx context.Context, conn driver.Conn) error {
	for _, stmt := range Schema {
		if err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("create table models: %w", err)
		}
	}
	return nil
}

// ErrNotFound is returned by Promote for an unknown version.
var ErrNotFound = errors.New("model version not found")

// nextRevision is a revision above every one this process or the table
// has written: the current time in nanoseconds, or one more than the
// last.
func (r *Registry) nextRevision(ctx context.Context) (uint64, error) {
	var top uint64
	if err := r.conn.QueryRow(ctx, "SELECT max(revision) FROM models").Scan(&top); err != nil {
		return 0, fmt.Errorf("read models revision: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	rev := uint64(r.now().UnixNano())
	rev = max(rev, top+1, r.revision+1)
	r.revision = rev
	return rev, nil
}

func (r *Registry) insert(ctx context.Context, models ...Model) error {
	b, err := r.conn.PrepareBatch(ctx, insertModels)
	if err != nil {
		return fmt.Errorf("prepare insert into models: %w", err)
	}
	for _, m := range models {
		rev, err := r.nextRevision(ctx)
		if err != nil {
			b.Abort()
			return err
		}
		if err := b.Append(m.Version, m.CreatedAt.UTC(), m.UpdatedAt.UTC(), rev, m.Status, m.DataSet, m.Artefact,
			m.WRMSSE, m.WSPL, m.MASE, m.Bias, m.Coverage50, m.Coverage90, m.Coverage98,
			m.ChampionVersion, m.ChampionWRMSSE, m.TrainSeconds, m.MetricsJSON); err != nil {
			b.Abort()
			return fmt.Errorf("append model %s: %w", m.Version, err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("insert into models: %w", err)
	}
	return nil
}

// Record stores a training run as a challenger (or with the status m
// has). CreatedAt and UpdatedAt default to now. Recording a version again
// replaces its row.
func (r *Registry) Record(ctx context.Context, m Model) error {
	if m.Version == "" {
		return errors.New("record model: no version")
	}
	if m.Status == "" {
		m.Status = StatusChallenger
	}
	switch m.Status {
	case StatusChampion, StatusChallenger, StatusRetired:
	default:
		return fmt.Errorf("record model %s: unknown status %q", m.Version, m.Status)
	}
	now := r.now().UTC().Truncate(time.Second)
	if m.CreatedAt.IsZero() {
		m.CreatedAt = now
	}
	if m.UpdatedAt.IsZero() {
		m.UpdatedAt = now
	}
	if m.Status == StatusChampion {
		return r.promote(ctx, m)
	}
	return r.insert(ctx, m)
}

// List returns every model, newest first (by created_at, then version).
func (r *Registry) List(ctx context.Context) ([]Model, error) {
	return r.query(ctx, "SELECT "+columns+" FROM models FINAL ORDER BY created_at DESC, version DESC")
}

// Get returns one model.
func (r *Registry) Get(ctx context.Context, version string) (Model, bool, error) {
	ms, err := r.query(ctx, "SELECT "+columns+" FROM models FINAL WHERE version = ?", version)
	if err != nil || len(ms) == 0 {
		return Model{}, false, err
	}
	return ms[0], true, nil
}

// Champion returns the champion; ok is false when there is none. Should
// two rows claim it (a promotion interrupted between writes cannot do
// that, but a hand edit can), the latest promoted wins.
func (r *Registry) Champion(ctx context.Context) (m Model, ok bool, err error) {
	ms, err := r.query(ctx, "SELECT "+columns+" FROM models FINAL WHERE status = ? ORDER BY revision DESC LIMIT 1", StatusChampion)
	if err != nil || len(ms) == 0 {
		return Model{}, false, err
	}
	return ms[0], true, nil
}

// Promote makes version the champion and retires the previous one, in one
// INSERT.
func (r *Registry) Promote(ctx context.Context, version string) error {
	m, ok, err := r.Get(ctx, version)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("promote %s: %w", version, ErrNotFound)
	}
	return r.promote(ctx, m)
}

func (r *Registry) promote(ctx context.Context, m Model) error {
	now := r.now().UTC().Truncate(time.Second)
	rows := []Model{}
	ms, err := r.query(ctx, "SELECT "+columns+" FROM models FINAL WHERE status = ? AND version != ?", StatusChampion, m.Version)
	if err != nil {
		return err
	}
	for _, old := range ms {
		old.Status, old.UpdatedAt = StatusRetired, now
		rows = append(rows, old)
	}
	m.Status, m.UpdatedAt = StatusChampion, now
	rows = append(rows, m)
	return r.insert(ctx, rows...)
}

func (r *Registry) query(ctx context.Context, q string, args ...any) ([]Model, error) {
	rows, err := r.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("query models: %w", err)
	}
	defer rows.Close()
	var out []Model
	for rows.Next() {
		var m Model
		var rev uint64
		if err := rows.Scan(&m.Version, &m.CreatedAt, &m.UpdatedAt, &rev, &m.Status, &m.DataSet, &m.Artefact,
			&m.WRMSSE, &m.WSPL, &m.MASE, &m.Bias, &m.Coverage50, &m.Coverage90, &m.Coverage98,
			&m.ChampionVersion, &m.ChampionWRMSSE, &m.TrainSeconds, &m.MetricsJSON); err != nil {
			return nil, fmt.Errorf("scan models: %w", err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read models: %w", err)
	}
	return out, nil
}

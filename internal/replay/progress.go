package replay

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// Progress draws a progress line: in place (carriage return) on a terminal,
// a new line every few seconds otherwise (logs, CI).
type Progress struct {
	w     io.Writer
	tty   bool
	every time.Duration
	now   func() time.Time

	mu      sync.Mutex
	start   time.Time
	lastLen int
}

// NewProgress returns a progress bar writing to w.
func NewProgress(w io.Writer, tty bool) *Progress {
	every := 5 * time.Second
	if tty {
		every = 200 * time.Millisecond
	}
	return &Progress{w: w, tty: tty, every: every, now: time.Now}
}

// IsTerminal reports whether f is a character device (a terminal).
func IsTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// Run redraws until ctx is done.
func (p *Progress) Run(ctx context.Context, tr *Tracker, total int, ph *phase) {
	p.mu.Lock()
	p.start = p.now()
	p.mu.Unlock()
	t := time.NewTicker(p.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.draw(tr.Stats(), total, ph)
		}
	}
}

// Finish draws the final state and ends the line.
func (p *Progress) Finish(tr *Tracker, total int, ph *phase) {
	p.draw(tr.Stats(), total, ph)
	if p.tty {
		fmt.Fprintln(p.w)
	}
}

func (p *Progress) draw(s Stats, total int, ph *phase) {
	p.mu.Lock()
	defer p.mu.Unlock()
	name, lags := ph.get()
	line := renderProgress(s, total, p.now().Sub(p.start), name, lags)
	if !p.tty {
		fmt.Fprintln(p.w, line)
		return
	}
	pad := ""
	if n := p.lastLen - len(line); n > 0 {
		pad = strings.Repeat(" ", n) // clear what a longer previous line left
	}
	p.lastLen = len(line)
	fmt.Fprint(p.w, "\r"+line+pad)
}

// renderProgress formats one progress line. The bar shows accounted events
// (forecast, rejected or not demand) of all planned events and the actor's.
func renderProgress(s Stats, total int, elapsed time.Duration, phase string, lags []StageLag) string {
	const width = 24
	// The demo loop's purchase orders and receipts are not planned: they
	// join the total as they are produced (they count as done once
	// forecast, like the lines).
	total += s.ByKind[KindPurchaseOrder] + s.ByKind[KindReceipt]
	done := s.Forecasts + s.Rejected + s.NotDemand
	frac := 0.0
	if total > 0 {
		frac = min(1, float64(done)/float64(total))
	}
	filled := int(frac * width)
	bar := strings.Repeat("#", filled) + strings.Repeat(".", width-filled)
	rate := 0.0
	if secs := elapsed.Seconds(); secs > 0 {
		rate = float64(s.Forecasts) / secs
	}
	line := fmt.Sprintf("[%s] %3.0f%% produced %d/%d forecasts %d rejected %d proposals %d %.0f ev/s %s",
		bar, frac*100, s.Produced, total, s.Forecasts, s.Rejected, s.Proposals, rate, elapsed.Truncate(time.Second))
	if phase != "" {
		line += " | " + phase
	}
	if len(lags) > 0 && phase != "producing" {
		line += " (lag " + formatLags(lags) + ")"
	}
	return line
}

package kafkax

import "github.com/twmb/franz-go/pkg/kgo"

// ReadCommitted is the option every client that reads stockcast's topics
// uses (besides the Consumer, which sets it itself): records of aborted
// transactions, and of open ones, are never returned. The consumers'
// outputs are written in transactions (docs/design.md, "Delivery").
func ReadCommitted() kgo.Opt { return kgo.FetchIsolationLevel(kgo.ReadCommitted()) }

// ReadToEnd are the options of a reader that stops at end offsets (the
// high watermarks from kadm's ListEndOffsets): read_committed, and the
// transaction markers returned as records. Each committed or aborted
// transaction leaves a marker that takes an offset, often the last one of a
// partition, so such a reader must see markers to know its position passed
// the end. It must skip them as data: see IsControl.
func ReadToEnd() []kgo.Opt {
	return []kgo.Opt{kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords()}
}

// IsControl reports whether r is a transaction marker (only returned to a
// client with ReadToEnd's options), not data.
func IsControl(r *kgo.Record) bool { return r.Attrs.IsControl() }

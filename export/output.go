package export

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"

	"github.com/ehrledger/ehrledger/store"
)

// output buffers a batch's ndjson by type and stores it as sealed parts,
// a type's buffer once it reaches partBytes, all of them once together
// they reach bufferedBytes, and the rest at the end
// of the batch.
type output struct {
	x        *running
	seq      int64
	bufs     map[string]*buffer
	buffered int
	count    int64
}

type buffer struct {
	data []byte
	n    int
}

// reset empties the buffers (of a batch that failed, too) for a batch
// whose parts are numbered from seq.
func (o *output) reset(seq int64) {
	for _, b := range o.bufs {
		b.data, b.n = b.data[:0], 0
	}
	o.seq, o.buffered, o.count = seq, 0, 0
}

func (o *output) add(ctx context.Context, v *store.Version) error {
	b := o.bufs[v.Type]
	if b == nil {
		b = &buffer{}
		o.bufs[v.Type] = b
	}
	before := len(b.data)
	if bytes.ContainsAny(v.Body, "\r\n") {
		var c bytes.Buffer
		if err := json.Compact(&c, v.Body); err != nil {
			return err
		}
		b.data = append(b.data, c.Bytes()...)
	} else {
		b.data = append(b.data, v.Body...)
	}
	b.data = append(b.data, '\n')
	b.n++
	o.count++
	o.buffered += len(b.data) - before
	switch {
	case o.buffered >= bufferedBytes:
		return o.flush(ctx)
	case len(b.data) >= partBytes:
		return o.store(ctx, []string{v.Type})
	}
	return nil
}

// flush stores every buffer.
func (o *output) flush(ctx context.Context) error {
	types := make([]string, 0, len(o.bufs))
	for t, b := range o.bufs {
		if b.n > 0 {
			types = append(types, t)
		}
	}
	slices.Sort(types)
	return o.store(ctx, types)
}

// store seals the buffers of types into parts and stores them.
func (o *output) store(ctx context.Context, types []string) error {
	if len(types) == 0 {
		return nil
	}
	parts := make([]store.ExportPart, 0, len(types))
	for _, t := range types {
		b := o.bufs[t]
		sealed, err := o.x.key.Seal(aad(o.x.job.ID, t, o.seq), b.data)
		if err != nil {
			return err
		}
		parts = append(parts, store.ExportPart{Type: t, Seq: o.seq, N: b.n, Data: sealed})
		o.seq++
		o.buffered -= len(b.data)
		b.data, b.n = b.data[:0], 0
	}
	return o.x.j.store.AddExportParts(ctx, o.x.job.ID, o.x.worker, lease, parts)
}

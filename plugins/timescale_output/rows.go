package timescale_output

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
	"sync"

	"github.com/qicore/qiflow/internal/datum"
)

// row is one row to write: the index of its message in the batch, the row
// as a binary COPY tuple, and its conflict key as appendKeyPart renders it,
// whose first 8 bytes prefix holds as a number for quick comparison. tuple
// and key point into the batch's encodedBatch buffer.
type row struct {
	index  int
	prefix uint64
	tuple  []byte
	key    []byte
}

// compareKeys orders rows by key.
func compareKeys(a, b row) int {
	if a.prefix != b.prefix {
		if a.prefix < b.prefix {
			return -1
		}
		return 1
	}
	return bytes.Compare(a.key, b.key)
}

// keyPrefix is the first 8 bytes of key as a big-endian number, padded
// with zeros: it orders keys as their first 8 bytes do.
func keyPrefix(key []byte) uint64 {
	var b [8]byte
	copy(b[:], key)
	return binary.BigEndian.Uint64(b[:])
}

// encodedBatch is one batch's rows, encoded into one buffer, and the scratch
// space to build them: everything a WriteBatch needs per row, reused
// through encodedPool so that a batch allocates next to nothing.
type encodedBatch struct {
	buf   []byte
	rows  []row
	spans []span
	cells []datum.Datum
	// seen and exact are dedupe's index of the keys met so far.
	seen  map[uint64]int
	exact map[string]int
}

// span is where a row's tuple and key lie in encodedBatch.buf.
type span struct{ index, start, key, end int }

var encodedPool = sync.Pool{New: func() any { return &encodedBatch{seen: map[uint64]int{}} }}

// newEncodedBatch returns an empty encodedBatch with room for a row of
// columns cells.
func newEncodedBatch(columns int) *encodedBatch {
	e := encodedPool.Get().(*encodedBatch)
	if cap(e.cells) < columns {
		e.cells = make([]datum.Datum, columns)
	}
	e.cells = e.cells[:columns]
	return e
}

// release returns e to the pool; nothing of it may be used afterwards. The
// cells are cleared, so that the pool holds no message alive.
func (e *encodedBatch) release() {
	clear(e.cells)
	clear(e.seen)
	e.exact = nil
	e.buf, e.rows, e.spans = e.buf[:0], e.rows[:0], e.spans[:0]
	encodedPool.Put(e)
}

// add encodes the row in e.cells, the values of the message at index, for
// columns: each value is converted and checked for its column (cell), then
// appended as a tuple and as a key. A value that does not fit leaves e as
// it was and returns the error.
func (e *encodedBatch) add(index int, columns []column, key []keyPart) error {
	for j, col := range columns {
		if err := cell(col, &e.cells[j]); err != nil {
			return err
		}
	}
	start := len(e.buf)
	e.buf = appendTupleHeader(e.buf, len(columns))
	for j, col := range columns {
		buf, err := appendField(e.buf, col, &e.cells[j])
		if err != nil {
			e.buf = e.buf[:start]
			return err
		}
		e.buf = buf
	}
	keyAt := len(e.buf)
	for _, k := range key {
		e.buf = appendKeyPart(e.buf, k.col, &e.cells[k.idx])
	}
	e.spans = append(e.spans, span{index: index, start: start, key: keyAt, end: len(e.buf)})
	return nil
}

// finish returns the rows added, once no more will be: their slices point
// into a buffer that no longer grows.
func (e *encodedBatch) finish() []row {
	for _, s := range e.spans {
		key := e.buf[s.key:s.end:s.end]
		e.rows = append(e.rows, row{index: s.index, prefix: keyPrefix(key), tuple: e.buf[s.start:s.key:s.key], key: key})
	}
	return e.rows
}

// keySeed hashes keys for dedupe's index.
var keySeed = maphash.MakeSeed()

// find returns where out holds a row with key k, if it does.
func (e *encodedBatch) find(out []row, k []byte) (int, bool) {
	at, ok := e.seen[maphash.Bytes(keySeed, k)]
	if !ok {
		return 0, false
	}
	if bytes.Equal(out[at].key, k) {
		return at, true
	}
	at, ok = e.exact[string(k)] // k's hash is another key's
	return at, ok
}

// remember records that out[at] holds the row with key k, which find did
// not find.
func (e *encodedBatch) remember(k []byte, at int) {
	h := maphash.Bytes(keySeed, k)
	if _, taken := e.seen[h]; !taken {
		e.seen[h] = at
		return
	}
	if e.exact == nil {
		e.exact = map[string]int{}
	}
	e.exact[string(k)] = at
}

package timescale_output

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/qicore/qiflow/internal/datum"
)

// The binary COPY format (PostgreSQL's COPY documentation): a signature,
// flags and a header extension length, then per row a 16-bit field count
// and each field as a 32-bit length (-1 for NULL) and its bytes in the
// type's binary send format, then a 16-bit -1.
var copyHeader = []byte("PGCOPY\n\377\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00")

var copyTrailer = []byte{0xff, 0xff}

// pgEpoch is where PostgreSQL's binary timestamps and dates count from.
var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

const pgEpochMicros = 946_684_800_000_000 // pgEpoch in Unix microseconds

// appendTupleHeader starts a row of n fields.
func appendTupleHeader(buf []byte, n int) []byte {
	return binary.BigEndian.AppendUint16(buf, uint16(n))
}

// appendField appends d, as cell returned it for col, as one field of a
// binary COPY row.
func appendField(buf []byte, col column, d *datum.Datum) ([]byte, error) {
	if d.Kind == datum.Null {
		return binary.BigEndian.AppendUint32(buf, math.MaxUint32), nil // -1
	}
	at := len(buf)
	buf = append(buf, 0, 0, 0, 0) // the length, set below
	var err error
	switch d.Kind {
	case datum.Decimal:
		buf, err = d.Dec.AppendBinary(buf)
	case datum.Text:
		if col.typeOID == oidJSONB {
			buf = append(buf, 1) // jsonb's binary format version
		}
		buf = append(buf, d.Bytes...)
	case datum.Time:
		buf = appendTime(buf, col, d.Time)
	case datum.Int:
		switch col.typeOID {
		case oidInt2:
			buf = binary.BigEndian.AppendUint16(buf, uint16(d.Int))
		case oidInt4:
			buf = binary.BigEndian.AppendUint32(buf, uint32(d.Int))
		default:
			buf = binary.BigEndian.AppendUint64(buf, uint64(d.Int))
		}
	case datum.Float:
		if col.typeOID == oidFloat4 {
			buf = binary.BigEndian.AppendUint32(buf, math.Float32bits(float32(d.Float)))
		} else {
			buf = binary.BigEndian.AppendUint64(buf, math.Float64bits(d.Float))
		}
	case datum.Bool:
		buf = append(buf, byte(d.Int))
	default:
		var out []byte
		if out, err = encodeWithPgx(buf, col, d.Any); err == nil && out == nil {
			return binary.BigEndian.AppendUint32(buf[:at], math.MaxUint32), nil // pgx encoded NULL
		}
		buf = out
	}
	if err != nil {
		return nil, errValue(col, "%v", err)
	}
	binary.BigEndian.PutUint32(buf[at:], uint32(len(buf)-at-4))
	return buf, nil
}

// appendTime encodes t as col's type stores it: timestamptz the instant in
// microseconds, timestamp the wall clock of t's zone, date its wall date in
// days. Nanoseconds are truncated, as pgx does.
func appendTime(buf []byte, col column, t time.Time) []byte {
	switch col.typeOID {
	case oidDate:
		wall := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
		days := (wall.Unix() - pgEpoch.Unix()) / 86400
		return binary.BigEndian.AppendUint32(buf, uint32(int32(days)))
	case oidTimestamp:
		t = time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
	}
	micros := t.Unix()*1_000_000 + int64(t.Nanosecond())/1000 - pgEpochMicros
	return binary.BigEndian.AppendUint64(buf, uint64(micros))
}

// pgxTypes encodes the values of column types qiflow has no encoder of
// its own for (uuid, inet, interval, arrays…) as pgx's CopyFrom would. A
// pgtype.Map is not safe for concurrent use, hence the lock; these types
// are rare in market data.
var pgxTypes struct {
	sync.Mutex
	m *pgtype.Map
}

// encodeWithPgx appends v in col's binary format; it returns nil when pgx
// encodes v as NULL.
func encodeWithPgx(buf []byte, col column, v any) ([]byte, error) {
	pgxTypes.Lock()
	defer pgxTypes.Unlock()
	if pgxTypes.m == nil {
		pgxTypes.m = pgtype.NewMap()
	}
	m := pgxTypes.m
	out, err := m.Encode(col.typeOID, pgtype.BinaryFormatCode, v, buf)
	if err == nil {
		return out, nil
	}
	// As pgx's CopyFrom does: a value with no binary encoding of its own is
	// taken in its text form, read as the column's type, and encoded from
	// that (a uuid given as a string).
	text, ok := v.(string)
	if !ok {
		b, terr := m.Encode(col.typeOID, pgtype.TextFormatCode, v, nil)
		if terr != nil {
			return nil, fmt.Errorf("encode %T: %w", v, err)
		}
		text = string(b)
	}
	var parsed any
	if serr := m.Scan(col.typeOID, pgtype.TextFormatCode, []byte(text), &parsed); serr != nil {
		return nil, fmt.Errorf("encode %T: %w", v, err)
	}
	if out, err = m.Encode(col.typeOID, pgtype.BinaryFormatCode, parsed, buf); err != nil {
		return nil, fmt.Errorf("encode %T: %w", v, err)
	}
	return out, nil
}

// streams holds the buffers copyRows builds its COPY data in.
var streams = sync.Pool{New: func() any { return new([]byte) }}

// copyRows sends rows, whose tuples are in the binary COPY format, with one
// COPY … FROM STDIN statement, and returns how many rows it wrote.
func copyRows(ctx context.Context, conn *pgconn.PgConn, statement string, rows []row) (int64, error) {
	stream := streams.Get().(*[]byte)
	defer streams.Put(stream)
	data := append((*stream)[:0], copyHeader...)
	for _, r := range rows {
		data = append(data, r.tuple...)
	}
	data = append(data, copyTrailer...)
	*stream = data
	tag, err := conn.CopyFrom(ctx, bytes.NewReader(data), statement)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

// field returns the i-th field of a binary COPY tuple: its length word and
// its bytes.
func field(tuple []byte, i int) []byte {
	pos := 2 // the field count
	for ; i > 0; i-- {
		n := int32(binary.BigEndian.Uint32(tuple[pos:]))
		pos += 4 + int(max(n, 0))
	}
	n := int32(binary.BigEndian.Uint32(tuple[pos:]))
	return tuple[pos : pos+4+int(max(n, 0))]
}

// appendArray appends the binary format of a one-dimensional array of the
// idx-th field of each row, whose elements are of type elem: dimensions,
// a has-nulls flag, the element type, the length and lower bound, then each
// element as a length word and its bytes, as in a COPY tuple.
func appendArray(buf []byte, elem uint32, rows []row, idx int) []byte {
	buf = binary.BigEndian.AppendUint32(buf, 1) // one dimension
	buf = binary.BigEndian.AppendUint32(buf, 0) // has nulls: array_recv does not need it
	buf = binary.BigEndian.AppendUint32(buf, elem)
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(rows)))
	buf = binary.BigEndian.AppendUint32(buf, 1) // lower bound
	for _, r := range rows {
		buf = append(buf, field(r.tuple, idx)...)
	}
	return buf
}

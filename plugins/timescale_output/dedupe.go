package timescale_output

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/qicore/qiflow/internal/decimal"
	"github.com/qicore/qiflow/internal/result"
)

// dedupe resolves rows of one batch that share a key, so that the write
// never meets its own rows: with do_nothing the first row wins, with
// do_update the last, and with error the later rows fail. It returns the
// rows to write, in batch order, and how many were dropped as duplicates.
func dedupe(rows []row, keyIdx []int, mode conflictMode, failed map[int]error) ([]row, int) {
	if len(keyIdx) == 0 || len(rows) < 2 {
		return rows, 0
	}
	seen := make(map[string]int, len(rows)) // key → position in out
	out := make([]row, 0, len(rows))
	dropped := 0
	for _, r := range rows {
		key := rowKey(r.values, keyIdx)
		at, dup := seen[key]
		switch {
		case !dup:
			seen[key] = len(out)
			out = append(out, r)
		case mode == conflictDoUpdate:
			out[at].index, out[at].values = -1, nil
			seen[key] = len(out)
			out = append(out, r)
			dropped++
		case mode == conflictError:
			failed[r.index] = result.New(result.Business, "23505", "duplicate key within the batch")
		default:
			dropped++
		}
	}
	if dropped == 0 {
		return out, 0
	}
	kept := out[:0]
	for _, r := range out {
		if r.index >= 0 {
			kept = append(kept, r)
		}
	}
	return kept, dropped
}

// rowKey renders the values at keyIdx (all values when keyIdx is nil) as
// one comparable string.
func rowKey(values []any, keyIdx []int) string {
	var b strings.Builder
	if keyIdx == nil {
		for _, v := range values {
			writeKeyPart(&b, v)
		}
		return b.String()
	}
	for _, i := range keyIdx {
		writeKeyPart(&b, values[i])
	}
	return b.String()
}

// writeKeyPart renders one key value so that values PostgreSQL considers
// equal render equally (1.5 and 1.50, one instant in two zones).
func writeKeyPart(b *strings.Builder, v any) {
	switch x := v.(type) {
	case nil:
		b.WriteString("\x01")
	case string:
		b.WriteString(x)
	case time.Time:
		b.WriteString(strconv.FormatInt(x.UnixNano(), 10))
	case pgtype.Numeric:
		b.WriteString(decimal.Canonical(x))
	default:
		fmt.Fprint(b, x)
	}
	b.WriteByte(0)
}

package timescale_output

import (
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/qicore/qiflow/internal/decimal"
	"github.com/qicore/qiflow/internal/result"
)

// keyPart is one column of the conflict key: where its value sits in a row,
// and the column, whose type says which values PostgreSQL stores as one.
type keyPart struct {
	idx int
	col column
}

// candidates holds, for the row of a key that is about to be written (by
// its message index), the other rows of the batch with the same key, in the
// order they are to be tried should that row be rejected by the database.
type candidates map[int][]row

// dedupe resolves rows of one batch that share a key, so that the write
// never meets its own rows: with do_nothing the first row is written, with
// do_update the last, and with error the first while the later rows fail.
// The rows not written are kept as candidates of the written one: if the
// database rejects it (a CHECK, a trigger, a foreign key), promote puts the
// next candidate in its place, so a valid message is never acknowledged on
// the strength of an invalid one. The candidates' order follows the mode's
// semantics, as if the rows were written one by one and the rejected ones
// skipped: with do_nothing the next in batch order (the first valid row
// wins), with do_update the previous one (the last valid row wins).
//
// It returns the rows to write sorted by key (see sortByKey), each with its
// key set, and the candidates.
func dedupe(rows []row, key []keyPart, mode conflictMode, failed map[int]error) ([]row, candidates) {
	if len(key) == 0 {
		return rows, nil
	}
	var next candidates
	seen := make(map[string]int, len(rows)) // key → position in out
	out := rows[:0]
	for _, r := range rows {
		r.key = rowKey(r.values, key)
		at, dup := seen[r.key]
		if !dup {
			seen[r.key] = len(out)
			out = append(out, r)
			continue
		}
		if next == nil {
			next = candidates{}
		}
		kept := out[at]
		switch mode {
		case conflictDoUpdate:
			// The later row is written; the one it replaces is tried first
			// should it fail, then the rows that one had replaced.
			next[r.index] = append([]row{kept}, next[kept.index]...)
			delete(next, kept.index)
			out[at] = r
		case conflictError:
			failed[r.index] = result.New(result.Business, "23505", "duplicate key within the batch")
			next[kept.index] = append(next[kept.index], r)
		default:
			next[kept.index] = append(next[kept.index], r)
		}
	}
	sortByKey(out)
	return out, next
}

// promote replaces each row of rows that failed by the next candidate of its
// key, if any, and reports whether it replaced one. The candidate takes the
// failed row's place, so rows stay sorted by key. A candidate that failed
// only as a duplicate within the batch (conflict: error) is tried after all:
// its key has no row.
func promote(rows []row, next candidates, failed map[int]error) bool {
	promoted := false
	for i, r := range rows {
		if failed[r.index] == nil || len(next[r.index]) == 0 {
			continue
		}
		c := next[r.index]
		delete(next, r.index)
		if len(c) > 1 {
			next[c[0].index] = c[1:]
		}
		delete(failed, c[0].index)
		rows[i] = c[0]
		promoted = true
	}
	return promoted
}

// skippedDuplicates counts the candidates left unused whose key was written:
// messages acknowledged because another message of the batch wrote their
// key.
func skippedDuplicates(next candidates, failed map[int]error) int {
	n := 0
	for _, c := range next {
		for _, r := range c {
			if failed[r.index] == nil {
				n++
			}
		}
	}
	return n
}

// sortByKey sorts rows by their rendered key. Every write of every writer
// then takes its keys' locks in one order, so concurrent batches with
// overlapping keys (replays, max_in_flight > 1, several replicas) wait for
// each other instead of deadlocking (SQLSTATE 40P01). The order is that of
// the rendering, not PostgreSQL's; all that matters is that it is the same
// everywhere, and the staged path keeps it (copier.insert orders by the
// staging table's ordinal).
func sortByKey(rows []row) {
	cmp := func(a, b row) int { return strings.Compare(a.key, b.key) }
	if !slices.IsSortedFunc(rows, cmp) {
		slices.SortFunc(rows, cmp)
	}
}

// rowKey renders the key values of a row as one comparable string, with
// one allocation for the usual key.
func rowKey(values []any, key []keyPart) string {
	var buf [96]byte
	b := buf[:0]
	for _, k := range key {
		b = appendKeyPart(b, k.col, values[k.idx])
	}
	return string(b)
}

// appendKeyPart renders one key value so that values the column stores as
// one render equally, and others differently. The encoded Go value is not
// yet what PostgreSQL stores:
//   - timestamptz keeps microseconds, and pgx truncates the nanoseconds;
//   - timestamp keeps the wall clock of the value's zone (pgx drops the
//     zone), not the instant; date keeps the wall date;
//   - char(n) ignores trailing blanks;
//   - numeric ignores trailing zeros (1.0 = 1.00);
//   - float8 has -0 = 0, float4 keeps float32 precision, NaN = NaN;
//   - uuid ignores case, hyphens and braces.
func appendKeyPart(b []byte, col column, v any) []byte {
	switch x := v.(type) {
	case nil:
		b = append(b, 1)
	case string:
		switch col.typeOID {
		case oidBPChar:
			x = strings.TrimRight(x, " ")
		case oidUUID:
			x = strings.Map(func(r rune) rune {
				if r == '-' || r == '{' || r == '}' {
					return -1
				}
				return r
			}, strings.ToLower(x))
		}
		b = append(b, x...)
	case time.Time:
		switch col.typeOID {
		case oidTimestamp:
			x = time.Date(x.Year(), x.Month(), x.Day(), x.Hour(), x.Minute(), x.Second(), x.Nanosecond(), time.UTC)
		case oidDate:
			x = time.Date(x.Year(), x.Month(), x.Day(), 0, 0, 0, 0, time.UTC)
		}
		b = strconv.AppendInt(b, x.Unix(), 10)
		b = append(b, '.')
		b = strconv.AppendInt(b, int64(x.Nanosecond()/1000), 10)
	case pgtype.Numeric:
		b = append(b, decimal.Canonical(x)...)
	case float64:
		b = appendFloat(b, col, x)
	case float32: // float4 as pgx scans it back from the table
		b = appendFloat(b, col, float64(x))
	case [16]byte: // uuid as pgx scans it back from the table
		b = hex.AppendEncode(b, x[:])
	case int16:
		b = strconv.AppendInt(b, int64(x), 10)
	case int32:
		b = strconv.AppendInt(b, int64(x), 10)
	case int64:
		b = strconv.AppendInt(b, x, 10)
	case bool:
		b = strconv.AppendBool(b, x)
	default:
		b = fmt.Append(b, x)
	}
	return append(b, 0)
}

func appendFloat(b []byte, col column, x float64) []byte {
	if col.typeOID == oidFloat4 {
		x = float64(float32(x))
	}
	switch {
	case math.IsNaN(x):
		return append(b, "NaN"...)
	case x == 0:
		return append(b, '0')
	}
	return strconv.AppendFloat(b, x, 'g', -1, 64)
}

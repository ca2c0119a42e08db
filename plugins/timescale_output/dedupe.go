package timescale_output

import (
	"math"
	"slices"
	"strconv"

	"github.com/qicore/qiflow/internal/result"
)

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
// It returns the rows to write sorted by key (see sortByKey), and the
// candidates. e indexes the keys.
func dedupe(e *encodedBatch, rows []row, key []keyPart, mode conflictMode, failed map[int]error) ([]row, candidates) {
	if len(key) == 0 {
		return rows, nil
	}
	var next candidates
	out := rows[:0]
	for _, r := range rows {
		at, dup := e.find(out, r.key)
		if !dup {
			e.remember(r.key, len(out))
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
	if !slices.IsSortedFunc(rows, compareKeys) {
		slices.SortFunc(rows, compareKeys)
	}
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

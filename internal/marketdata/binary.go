package marketdata

import (
	"bytes"
	"time"

	"github.com/qicore/qiflow/internal/datum"
	"github.com/qicore/qiflow/internal/decimal"
)

// binaryNumber is number for a value a binary format decoded: an exact
// decimal, a whole number, or a decimal string, as in JSON. A float is
// refused: its binary value is not the decimal its producer meant.
func binaryNumber(field string, r wireField) (decimal.Decimal, error) {
	switch r.value.Kind {
	case datum.Decimal:
		return r.value.Dec, nil
	case datum.Int:
		return decimal.FromInt64(r.value.Int), nil
	case datum.Text:
		n, err := decimal.ParseBytes(bytes.TrimSpace(r.value.Bytes))
		if err != nil {
			return decimal.Decimal{}, invalid(field, r, "not a decimal")
		}
		return n, nil
	case datum.Float:
		return decimal.Decimal{}, invalid(field, r, "a float, not an exact decimal")
	}
	return decimal.Decimal{}, invalid(field, r, "not a decimal")
}

// binaryTimestamp is timestamp for a value a binary format decoded: a point
// in time (Avro's timestamp-millis and timestamp-micros, Protobuf's
// Timestamp), integer epoch milliseconds, or an RFC 3339 string, as in JSON.
func binaryTimestamp(field string, r wireField) (time.Time, error) {
	switch r.value.Kind {
	case datum.Time:
		return r.value.Time.UTC(), nil
	case datum.Int:
		return time.UnixMilli(r.value.Int).UTC(), nil
	case datum.Text:
		t, err := time.Parse(time.RFC3339Nano, string(bytes.TrimSpace(r.value.Bytes)))
		if err != nil {
			return time.Time{}, invalid(field, r, "not an RFC 3339 timestamp")
		}
		return t.UTC(), nil
	}
	return time.Time{}, invalid(field, r, "not a timestamp")
}

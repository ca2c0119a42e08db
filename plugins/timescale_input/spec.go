// Package timescaleinput is the `timescale` input: it reads a table back
// out, in time order, for a time range or as a tail of new rows, one
// wire-format message per row, and can resume where it stopped.
package timescaleinput

import (
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/qicore/qiflow/internal/history"
)

// Field names.
const (
	fieldDSN          = "dsn"
	fieldTable        = "table"
	fieldColumns      = "columns"
	fieldTimeColumn   = "time_column"
	fieldKeyColumns   = "key_columns"
	fieldFrom         = "from"
	fieldTo           = "to"
	fieldMatch        = "match"
	fieldWhere        = "where"
	fieldArgs         = "args"
	fieldMode         = "mode"
	fieldPageSize     = "page_size"
	fieldPollInterval = "poll_interval"
	fieldSettle       = "settle"
	fieldCheckpoint   = "checkpoint"
)

// Modes.
const (
	modeRange = "range"
	modeTail  = "tail"
)

// Metadata keys set on every message.
const (
	// MetaTable is the table the row was read from.
	MetaTable = "timescale_table"
	// MetaTime is the row's time column, RFC 3339 with its full precision.
	MetaTime = "timescale_time"
)

func inputSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Beta().
		Version("0.15.0").
		Categories("Services").
		Summary("Reads a TimescaleDB hypertable or PostgreSQL table back out in time order, for a time range or as a tail of new rows, one wire-format message per row.").
		Description(`
Rows are read in (time, key) order, where the key is the primary key without the time column (or `+"`"+fieldKeyColumns+"`"+`), by keyset pages: each page is one indexed query that starts strictly after the last row of the page before. The range is never held in memory, and a page costs the same at any depth.

Each row becomes one JSON object whose keys are the column names in camelCase (`+"`usd_price`"+` → `+"`usdPrice`"+`), which is the wire format of docs/wire-format.md for the shipped tables: numerics are exact decimal strings, timestamps RFC 3339 with their full precision, NULLs are `+"`null`"+`. The message's metadata holds `+"`"+MetaTable+"`"+` and `+"`"+MetaTime+"`"+`.

In `+"`range`"+` mode the input reads `+"`[from, to)`"+` and ends. In `+"`tail`"+` mode it keeps polling for new rows every `+"`"+fieldPollInterval+"`"+`, reading rows only once they are `+"`"+fieldSettle+"`"+` old by the database's clock, so that rows committed a little out of time order are not skipped; a row is emitted at most `+"`"+fieldPollInterval+" + "+fieldSettle+"`"+` (plus a query) after its time.

With `+"`"+fieldCheckpoint+"`"+`, the position of the last row of the acknowledged prefix of batches is saved in the table `+history.CheckpointTable+` under that name, and a restart resumes after it: nothing acknowledged is read again, nothing is skipped. Batches acknowledged out of order are saved only once every batch before them is.

Identifiers are quoted, and `+"`"+fieldWhere+"`"+` values are parameters (`+"`$1`"+`, `+"`$2`"+`, ... for `+"`"+fieldArgs+"`"+`): a filter is never spliced into the SQL as text.`).
		Fields(
			service.NewStringField(fieldDSN).
				Description("PostgreSQL URL. Empty means the profile's database (DATABASE_URL).").
				Default("").
				Example("postgres://qiflow@localhost:5432/qiflow"),
			service.NewStringField(fieldTable).
				Description("Table or hypertable to read, optionally schema-qualified.").
				Example("crypto_prices"),
			service.NewStringListField(fieldColumns).
				Description("Columns to put in each message, in order. Empty means every column.").
				Default([]any{}).
				Example([]string{"last_updated", "coin_id", "symbol", "exchange_id", "usd_price"}),
			service.NewStringField(fieldTimeColumn).
				Description("The timestamptz column that orders the read. Empty means the hypertable's time dimension, or the first timestamptz column of the primary key.").
				Default("").
				Advanced(),
			service.NewStringListField(fieldKeyColumns).
				Description("Columns that, with the time column, are unique. Empty means the primary key.").
				Default([]any{}).
				Advanced(),
			service.NewStringField(fieldFrom).
				Description("First time to read (RFC 3339), included. Empty means the earliest row.").
				Default("").
				Example("2026-11-26T00:00:00Z"),
			service.NewStringField(fieldTo).
				Description("End of the range (RFC 3339), excluded. Empty means, in `range` mode, the time the input starts; in `tail` mode, no end.").
				Default("").
				Example("2026-11-27T00:00:00Z"),
			service.NewStringMapField(fieldMatch).
				Description("Only rows whose columns equal these values, e.g. one series.").
				Default(map[string]any{}).
				Example(map[string]any{"coin_id": "bitcoin", "exchange_id": "binance"}),
			service.NewStringField(fieldWhere).
				Description("An extra SQL condition on the table's columns, with `$1`, `$2`, ... standing for `"+fieldArgs+"`. Write values in `"+fieldArgs+"`, never here.").
				Default("").
				Example("usd_price > $1 AND source = $2"),
			service.NewAnyListField(fieldArgs).
				Description("Parameters of `"+fieldWhere+"`, in order. PostgreSQL casts them to the type they are compared with.").
				Default([]any{}).
				Example([]any{"1000.5", "coingecko"}),
			service.NewStringAnnotatedEnumField(fieldMode, map[string]string{
				modeRange: "Read `[from, to)` and end.",
				modeTail:  "Read from `from` and keep following new rows.",
			}).
				Description("Whether to end after the range or follow new rows.").
				Default(modeRange),
			service.NewIntField(fieldPageSize).
				Description("Rows per query, and so per batch.").
				Default(history.DefaultPageSize).
				Advanced(),
			service.NewDurationField(fieldPollInterval).
				Description("In `tail` mode, how long to wait for new rows once caught up.").
				Default("1s"),
			service.NewDurationField(fieldSettle).
				Description("In `tail` mode, how old a row must be before it is read: rows committed up to this much out of time order are still read in order.").
				Default("1s"),
			service.NewStringField(fieldCheckpoint).
				Description("Name under which the position is saved, so that a restart resumes after the last acknowledged row. Empty means no checkpoint: every start reads from `from`.").
				Default("").
				Example("prices-backfill"),
		).
		Example("Backfill a day", "Every price of 26 November, in time order, into a new service's topic.", `
input:
  timescale:
    table: crypto_prices
    from: 2026-11-26T00:00:00Z
    to: 2026-11-27T00:00:00Z
    checkpoint: backfill-2026-11-26
output:
  redpanda:
    topic: prices-backfill
`).
		Example("Follow one series", "New Bitcoin prices on Binance, within two seconds of their time.", `
input:
  timescale:
    table: crypto_prices
    mode: tail
    match: { coin_id: bitcoin, exchange_id: binance }
    poll_interval: 1s
    settle: 1s
`)
}

func init() {
	service.MustRegisterBatchInput("timescale", inputSpec(),
		func(conf *service.ParsedConfig, mgr *service.Resources) (service.BatchInput, error) {
			in, err := newInputFromConfig(conf, mgr)
			if err != nil {
				return nil, err
			}
			return service.AutoRetryNacksBatched(in), nil
		})
}

// Package timescale_output provides the timescale output: batched binary
// COPY into TimescaleDB (or PostgreSQL) tables with exactly-once rows, exact
// decimals and per-row isolation of bad rows into a dead-letter output.
package timescale_output

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redpanda-data/benthos/v4/public/bloblang"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/qicore/qiflow/internal/datum"
	"github.com/qicore/qiflow/internal/exactlyonce"
	"github.com/qicore/qiflow/internal/marketdata"
	"github.com/qicore/qiflow/internal/profile"
	"github.com/qicore/qiflow/internal/registry"
	"github.com/qicore/qiflow/internal/result"
	"github.com/qicore/qiflow/internal/schema"
)

// Field names.
const (
	fieldDSN             = "dsn"
	fieldTable           = "table"
	fieldFormat          = "format"
	fieldMapping         = "mapping"
	fieldColumns         = "columns"
	fieldConflict        = "conflict"
	fieldConflictColumns = "conflict_columns"
	fieldPoolSize        = "pool_size"
	fieldDeadLetter      = "dead_letter"
	fieldRetryInitial    = "retry_initial_interval"
	fieldRetryMax        = "retry_max_interval"
	fieldMaxInFlight     = "max_in_flight"
	fieldBatching        = "batching"
	fieldSchemaFile      = "schema_file"
	fieldExactlyOnce     = "exactly_once"
	fieldOffsetsTable    = "offsets_table"
	fieldDirectCompress  = "direct_compress"
)

func spec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Stable().
		Categories("Services").
		Summary("Writes rows into a TimescaleDB hypertable or PostgreSQL table with binary COPY: exactly once per key, exact decimals, and bad rows dead-lettered one by one.").
		Description(`
Each message becomes one row. Rows come either from a built-in decoder of qiflow's wire format (`+"`format`"+`) or from a Bloblang `+"`mapping`"+` that returns an object keyed by column name. Values are encoded for their column's type as read from the catalog at connect: NUMERIC exactly from JSON numbers or strings (never through a float64), timestamps from RFC 3339 or epoch milliseconds, text checked against its length.

### Writes

A batch goes in with one binary COPY. When it meets an existing key it is written through a staged path in one transaction: COPY into a per-connection temporary table, then `+"`INSERT … SELECT … ON CONFLICT`"+`. After a conflict the next batches take the staged path directly until they stop meeting conflicts. Duplicates inside a batch are resolved before the write, on keys compared as their columns store them: the first valid message wins with `+"`do_nothing`"+`, the last valid one with `+"`do_update`"+` (when the database rejects the row written for a key, the next duplicate is tried). A replayed batch therefore adds no rows. Rows are written in key order, so concurrent batches do not deadlock.

### Errors

- Transient failures (connection loss, SQLSTATE 08xxx, 40001, 40P01, 53xxx, 57P0x) are retried here with capped exponential backoff until they succeed or the stream stops (a stop interrupts the wait; the messages are replayed); such messages are never dead-lettered. An unknown SQLSTATE is retried 5 times, then treated as the fault of the rows that cause it.
- A message that cannot be decoded or validated, or a row the database rejects (21000, 22xxx, 23xxx, P0xxx), fails alone: the batch is split until the bad rows are isolated, the good rows are written, and each bad message goes to `+"`dead_letter`"+` with headers `+"`qiflow-error-category`, `qiflow-error-code`, `qiflow-error`, `qiflow-source-topic`, `qiflow-source-partition` and `qiflow-source-offset`"+`. Without `+"`dead_letter`"+` the failures are returned per message, for a `+"`fallback`"+` output to handle.
- Rejected credentials, missing privileges and configuration errors (unknown table or column) stop the pipeline with one clear error.`).
		Fields(
			service.NewStringField(fieldDSN).
				Description("PostgreSQL connection URL or DSN. Defaults to the profile's `database.url` (docs/profiles.md) when omitted or empty. Without a password in it (or in `PGPASSWORD` or `~/.pgpass`), the profile's `database.password` is used: `QIFLOW_DATABASE_PASSWORD` or a `password_file`.").
				Example("postgres://qiflow@localhost:5432/qiflow").
				Example("postgres://qiflow:${DB_PASSWORD}@localhost:5432/qiflow").
				Optional().
				Secret(),
			service.NewStringField(fieldTable).
				Description("Target table, optionally schema-qualified.").
				Example("crypto_prices").
				Example("market.crypto_prices"),
			service.NewStringEnumField(fieldFormat, slices.Sorted(maps.Keys(marketdata.Kinds))...).
				Description("Decode each message with qiflow's built-in decoder for this wire-format message type, validating it by DESIGN.md's rules: the fast path for the shipped pipelines. Exclusive with `mapping`.").
				Optional(),
			service.NewBloblangField(fieldMapping).
				Description("A Bloblang mapping from a message to an object keyed by column name. Missing keys and nulls become NULL; a mapping error dead-letters the message. Exclusive with `format`.").
				Example(`root.coin_id = this.coinId
root.usd_price = this.usdPrice
root.last_updated = this.lastUpdated`).
				Optional(),
			service.NewStringListField(fieldColumns).
				Description("Columns to write. Columns not listed keep their database defaults. Defaults to the decoder's columns with `format`, and to every column without a default with `mapping`.").
				Optional(),
			service.NewStringEnumField(fieldConflict, string(conflictError), string(conflictDoNothing), string(conflictDoUpdate)).
				Description("What a row whose key already exists does: `do_nothing` keeps the stored row (a replay adds nothing), `do_update` overwrites it (last write wins, also within a batch: the last the database accepts), `error` dead-letters the new row.").
				Default(string(conflictDoNothing)),
			service.NewStringListField(fieldConflictColumns).
				Description("The key that identifies a row. Defaults to the table's primary key.").
				Optional(),
			service.NewStringField(fieldSchemaFile).
				Description("A schema spec (as for `qiflow schema apply`) to apply before the first write. Instances that start together take an advisory lock, so the schema is applied once; destructive changes are refused.").
				Example("pipelines/schema.yaml").
				Optional(),
			service.NewIntField(fieldPoolSize).
				Description("Most database connections. Each batch in flight uses one. Defaults to the profile's `database.pool_size`.").
				Example(4).
				Optional(),
			onErrorField(),
			service.NewOutputField(fieldDeadLetter).
				Description("Where messages that can never be written go, with headers saying why. Typically a `redpanda` output to `<topic>.dlq` with `metadata.include_prefixes: [ \"qiflow-\" ]`.").
				Optional(),
			service.NewDurationField(fieldRetryInitial).
				Description("First wait before retrying a transient failure; it doubles with every attempt.").
				Default("100ms").
				Advanced(),
			service.NewDurationField(fieldRetryMax).
				Description("Longest wait between retries of a transient failure.").
				Default("5s").
				Advanced(),
			service.NewBoolField(fieldExactlyOnce).
				Description("Exactly once without a natural key: record each partition's next offset in `offsets_table`, in the transaction that writes the batch's rows, with a compare-and-set on the offset the batch starts from, and start the stream's `redpanda` input from those offsets. Every consumed message becomes exactly one row (two identical messages are two rows) or one dead letter, through crashes, restarts and rebalances, and a writer whose partitions moved away (a zombie) writes nothing. Rows go in with plain COPY; the table needs no key. Needs `max_in_flight: 1` and a `dead_letter` output. See docs/exactly-once.md.").
				Default(false),
			service.NewStringField(fieldOffsetsTable).
				Description("The table, optionally schema-qualified, that holds the next offset of each (consumer group, topic, partition) in `exactly_once` mode. It is created when missing.").
				Default("qiflow_offsets").
				Advanced(),
			service.NewBoolField(fieldDirectCompress).
				Description("Write with TimescaleDB's direct compress on COPY (`timescaledb.enable_direct_compress_copy`, 2.21 and later): rows are compressed as they arrive, into the columnstore, rather than by a later policy. TimescaleDB skips it for a table with a unique constraint (with a warning), so it suits `exactly_once` append tables. See docs/exactly-once.md for when it pays.").
				Default(false).
				Advanced(),
			service.NewOutputMaxInFlightField().
				Description("Most batches written at once, each with its own COPY on its own connection.").
				Default(2),
			service.NewBatchPolicyField(fieldBatching),
		).
		Fields(formatFields()...).
		LintRule(`root = match {
  this.exists("format") && this.exists("mapping") => [ "set either format or mapping, not both" ],
  !this.exists("format") && !this.exists("mapping") => [ "set format or mapping" ],
  this.exactly_once.or(false) && this.max_in_flight.or(2) != 1 => [ "exactly_once needs max_in_flight: 1, so that the batches of a partition are written in offset order" ],
  this.exactly_once.or(false) && !this.exists("dead_letter") => [ "exactly_once needs a dead_letter output: a message that cannot be written moves the partition's offset on, so it must be dead-lettered in the same step" ],`+onErrorLintRules+`
}`).
		Example("Prices", "Write price messages from Redpanda into crypto_prices, dead-lettering bad ones. The database and the brokers are the profile's (docs/profiles.md).", `
output:
  timescale:
    table: crypto_prices
    format: price
    batching: { count: 2000, period: 50ms }
    dead_letter:
      redpanda:
        topic: crypto-prices.dlq
        key: ${! @kafka_key }
        metadata: { include_prefixes: [ "qiflow-" ] }
`)
}

func init() {
	err := service.RegisterBatchOutput("timescale", spec(),
		func(conf *service.ParsedConfig, mgr *service.Resources) (service.BatchOutput, service.BatchPolicy, int, error) {
			o, err := newOutputFromConfig(conf, mgr)
			if err != nil {
				return nil, service.BatchPolicy{}, 0, err
			}
			policy, err := conf.FieldBatchPolicy(fieldBatching)
			if err != nil {
				return nil, service.BatchPolicy{}, 0, err
			}
			maxInFlight, err := conf.FieldMaxInFlight()
			if err != nil {
				return nil, service.BatchPolicy{}, 0, err
			}
			return o, policy, maxInFlight, nil
		})
	if err != nil {
		panic(err)
	}
}

// outputConfig is the parsed configuration.
type outputConfig struct {
	dsn   string
	table pgx.Identifier
	kind  *marketdata.Kind
	// framed decodes kind's messages when they are Confluent-framed
	// (format_registry.go); nil for the JSON wire format.
	framed          *registry.Decoder
	mapping         *bloblang.Executor
	columns         []string
	conflict        conflictMode
	conflictColumns []string
	poolSize        int
	retryInitial    time.Duration
	retryMax        time.Duration
	schema          *schema.Spec
	// password is the profile's database password, used when the
	// connection string gives none.
	password profile.Secret
	// exactlyOnce keeps offsets in offsetsTable (exactly_once.go).
	exactlyOnce    bool
	offsetsTable   pgx.Identifier
	directCompress bool
	onError        onError
}

// output is the timescale output.
type output struct {
	conf       outputConfig
	deadLetter *service.OwnedOutput
	log        *service.Logger
	metrics    metrics
	// scope is shared with the other components of the stream, so a fatal
	// error here ends the stream's redpanda input.
	scope *result.Scope
	// link is shared with the stream's redpanda input in exactly-once mode:
	// it names the consumer group, and the input reads the offsets back.
	link *exactlyonce.Link
	// gaps counts, per partition, the batches refused in a row because they
	// start after the offset the database holds (exactly_once.go).
	gaps gapCounter

	mu      sync.RWMutex
	pool    *pgxpool.Pool
	columns []column
	key     []keyPart
	copier  *copier
	tries   int
}

func newOutputFromConfig(conf *service.ParsedConfig, mgr *service.Resources) (*output, error) {
	var (
		c   outputConfig
		err error
	)
	p, err := profile.Current()
	if err != nil {
		return nil, fmt.Errorf("profile: %w", err)
	}
	if c.dsn = p.Database.URL.Reveal(); conf.Contains(fieldDSN) {
		dsn, err := conf.FieldString(fieldDSN)
		if err != nil {
			return nil, err
		}
		if dsn != "" {
			c.dsn = dsn
		}
	}
	parsed, err := pgxpool.ParseConfig(c.dsn)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", fieldDSN, result.Classify(err))
	}
	if parsed.ConnConfig.Password == "" {
		if c.password, err = p.Database.ResolvePassword(); err != nil {
			return nil, fmt.Errorf("profile %s: %w", p.Name, err)
		}
	}
	name, err := conf.FieldString(fieldTable)
	if err != nil {
		return nil, err
	}
	if c.table, err = parseTableName(name); err != nil {
		return nil, err
	}
	hasFormat, hasMapping := conf.Contains(fieldFormat), conf.Contains(fieldMapping)
	if hasFormat == hasMapping {
		return nil, fmt.Errorf("set exactly one of %s and %s", fieldFormat, fieldMapping)
	}
	if hasFormat {
		format, err := conf.FieldString(fieldFormat)
		if err != nil {
			return nil, err
		}
		c.kind = marketdata.Kinds[format]
		c.columns = c.kind.Columns
		if c.framed, err = parseFramed(conf, c.kind); err != nil {
			return nil, err
		}
	} else if c.mapping, err = conf.FieldBloblang(fieldMapping); err != nil {
		return nil, err
	}
	columns, err := conf.FieldStringList(fieldColumns)
	if err != nil {
		return nil, err
	}
	if len(columns) > 0 {
		if c.kind != nil && !slices.Equal(columns, c.kind.Columns) {
			return nil, fmt.Errorf("%s: format %s writes the columns %v", fieldColumns, c.kind.Name, c.kind.Columns)
		}
		c.columns = columns
	}
	mode, err := conf.FieldString(fieldConflict)
	if err != nil {
		return nil, err
	}
	c.conflict = conflictMode(mode)
	if c.conflictColumns, err = conf.FieldStringList(fieldConflictColumns); err != nil {
		return nil, err
	}
	if c.poolSize = p.Database.PoolSize; conf.Contains(fieldPoolSize) {
		if c.poolSize, err = conf.FieldInt(fieldPoolSize); err != nil {
			return nil, err
		}
	}
	if c.poolSize < 1 {
		return nil, fmt.Errorf("%s must be at least 1", fieldPoolSize)
	}
	if conf.Contains(fieldSchemaFile) {
		path, err := conf.FieldString(fieldSchemaFile)
		if err != nil {
			return nil, err
		}
		if c.schema, err = schema.Load(path); err != nil {
			return nil, fmt.Errorf("%s: %w", fieldSchemaFile, err)
		}
	}
	if c.retryInitial, err = conf.FieldDuration(fieldRetryInitial); err != nil {
		return nil, err
	}
	if c.retryMax, err = conf.FieldDuration(fieldRetryMax); err != nil {
		return nil, err
	}
	if c.exactlyOnce, err = conf.FieldBool(fieldExactlyOnce); err != nil {
		return nil, err
	}
	offsets, err := conf.FieldString(fieldOffsetsTable)
	if err != nil {
		return nil, err
	}
	if c.offsetsTable, err = parseTableName(offsets); err != nil {
		return nil, fmt.Errorf("%s: %w", fieldOffsetsTable, err)
	}
	if c.directCompress, err = conf.FieldBool(fieldDirectCompress); err != nil {
		return nil, err
	}
	if c.exactlyOnce && !conf.Contains(fieldDeadLetter) {
		return nil, fmt.Errorf("%s needs a %s output: a message that cannot be written moves its partition's offset on, so it is dead-lettered in the same step", fieldExactlyOnce, fieldDeadLetter)
	}
	if c.onError, err = parseOnError(conf); err != nil {
		return nil, err
	}
	o := &output{conf: c, log: mgr.Logger(), metrics: newMetrics(mgr.Metrics()), scope: result.ScopeOf(mgr), link: exactlyonce.LinkOf(mgr)}
	if c.exactlyOnce {
		o.link.Want()
	}
	if conf.Contains(fieldDeadLetter) {
		if o.deadLetter, err = conf.FieldOutput(fieldDeadLetter); err != nil {
			return nil, err
		}
		// Start it now: it connects before the first dead letter, and Close
		// then finds it running (an owned output never started cannot close).
		if err := o.deadLetter.Prime(); err != nil {
			return nil, fmt.Errorf("%s: %w", fieldDeadLetter, err)
		}
	}
	return o, nil
}

// Connect opens the pool and reads the table from the catalog. An
// unreachable database is retried with backoff; an unknown table or column
// and rejected credentials stop the pipeline.
func (o *output) Connect(ctx context.Context) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.pool != nil {
		return nil
	}
	// A connect that hangs (an unreachable host) must not hold up a stop.
	ctx, cancel := o.untilDrained(ctx)
	defer cancel()
	err := o.connectLocked(ctx)
	if err == nil {
		o.tries = 0
		if o.conf.exactlyOnce {
			o.log.Infof("Writing to table %s (%d columns, exactly once: offsets of group %q in %s)", o.conf.table.Sanitize(), len(o.columns), o.link.Group(), o.conf.offsetsTable.Sanitize())
		} else {
			o.log.Infof("Writing to table %s (%d columns, key %v, conflict %s)", o.conf.table.Sanitize(), len(o.columns), o.keyColumns(), o.conf.conflict)
		}
		return nil
	}
	classified := result.Classify(err)
	if classified.Action() == result.Stop {
		o.stop(classified)
		return nil
	}
	o.tries++
	return service.NewErrBackOff(classified, backoff(o.tries, time.Second, 10*time.Second))
}

// poolConfig is the pool's configuration: the connection string, with the
// profile's password when it carries none, and pool_size connections.
func (c outputConfig) poolConfig() (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(c.dsn)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = int32(c.poolSize)
	if cfg.ConnConfig.Password == "" {
		cfg.ConnConfig.Password = c.password.Reveal()
	}
	// A write is acknowledged, and its offsets committed, once its
	// transaction commits: that commit must survive a database crash, or the
	// rows vanish while the input has moved past them. A server tuned with
	// synchronous_commit = off loses the last commits of a crash, so
	// qiflow's own sessions turn it on, unless the connection string sets it.
	//
	// It is set with SET after connecting rather than as a startup
	// parameter, which PgBouncer refuses (session pooling keeps it, as it
	// keeps the staging table); exactly-once transactions also set it with
	// SET LOCAL.
	if _, set := cfg.ConnConfig.RuntimeParams["synchronous_commit"]; !set {
		cfg.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
			if _, err := conn.Exec(ctx, "SET synchronous_commit = on"); err != nil {
				return fmt.Errorf("set synchronous_commit: %w", err)
			}
			return nil
		}
	}
	return cfg, nil
}

func (o *output) connectLocked(ctx context.Context) error {
	cfg, err := o.conf.poolConfig()
	if err != nil {
		return err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return err
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return fmt.Errorf("connect to %s@%s:%d/%s: %w", cfg.ConnConfig.User, cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database, err)
	}
	if err := o.applySchema(ctx, pool); err != nil {
		pool.Close()
		return err
	}
	t, err := loadTable(ctx, pool, o.conf.table)
	if err != nil {
		pool.Close()
		return err
	}
	names := o.conf.columns
	if len(names) == 0 {
		names = t.withoutDefaults()
	}
	cols, err := t.pick(names)
	if err == nil {
		err = checkRequiredColumns(t, names)
	}
	keys := o.conf.conflictColumns
	if len(keys) == 0 {
		keys = t.primaryKey
	}
	if o.conf.exactlyOnce {
		keys = nil // rows are appended; the offsets make them exactly once
	}
	if err == nil && len(keys) == 0 && o.conf.conflict != conflictError && !o.conf.exactlyOnce {
		err = result.New(result.System, "no_conflict_key",
			fmt.Sprintf("table %s has no primary key: set conflict_columns, or conflict: error", t.ident.Sanitize()))
	}
	var key []keyPart
	for _, k := range keys {
		i := slices.Index(names, k)
		if i < 0 && err == nil {
			err = result.New(result.System, "unknown_column", fmt.Sprintf("conflict column %s is not among the columns written %v", k, names))
		}
		if err != nil {
			break
		}
		key = append(key, keyPart{idx: i, col: cols[i]})
	}
	if err != nil {
		pool.Close()
		return err
	}
	if o.conf.exactlyOnce {
		if err := createOffsetsTable(ctx, pool, o.conf.offsetsTable); err != nil {
			pool.Close()
			return err
		}
	}
	o.pool, o.columns, o.key = pool, cols, key
	o.copier = newCopier(pool, t, names, keys, key, o.conf.conflict)
	if len(keys) > 0 {
		o.copier.prepareStages(ctx, o.conf.poolSize)
	}
	if o.conf.exactlyOnce {
		o.link.Provide(o)
	}
	return nil
}

// applySchema applies the configured schema spec, if any, under the
// schema package's advisory lock.
func (o *output) applySchema(ctx context.Context, pool *pgxpool.Pool) error {
	if o.conf.schema == nil {
		return nil
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire a connection to apply the schema: %w", err)
	}
	defer conn.Release()
	report, err := schema.Apply(ctx, conn.Conn(), o.conf.schema, schema.ApplyOptions{
		Log: func(line string) { o.log.Infof("schema: %s", line) },
	})
	if err != nil {
		return fmt.Errorf("apply schema: %w", err)
	}
	o.log.Infof("Schema applied: %d steps", len(report.Applied))
	return nil
}

// checkRequiredColumns fails when a NOT NULL column without a default is
// not written: every row would fail.
func checkRequiredColumns(t *table, names []string) error {
	var missing []string
	for _, n := range t.order {
		c := t.columns[n]
		if c.notNull && !c.hasDefault && !slices.Contains(names, n) {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return result.New(result.System, "missing_column",
			fmt.Sprintf("table %s requires %s (NOT NULL without a default), but the pipeline does not write it", t.ident.Sanitize(), strings.Join(missing, ", ")))
	}
	return nil
}

func (o *output) keyColumns() []string {
	var keys []string
	for _, k := range o.key {
		keys = append(keys, k.col.name)
	}
	return keys
}

// stop records a fatal error: the output refuses further writes, and the
// redpanda input ends the pipeline (result.Scope).
func (o *output) stop(err *result.Error) {
	if o.scope.Halted() == nil {
		o.log.Errorf("Stopping the timescale output (%s): %v", err.Category, err)
	}
	o.scope.Halt(err)
}

// unknownRetries is how many times a write that fails with a SQLSTATE
// qiflow does not know (result.UnknownSQLSTATE) is retried before the rows
// that cause it are isolated and dead-lettered. The server answered, so the
// database is up; an error that outlasts these retries (about 3 s with the
// default intervals) is taken for the rows' fault, lest it stop the
// partition forever.
const unknownRetries = 5

// errDraining is why a retry wait ends early: the stream is stopping, and
// the messages not yet written are left to be replayed.
var errDraining = errors.New("the stream is draining")

// WriteBatch writes one row per message and returns once every message is
// either written, or skipped for a key written already, or dead-lettered.
//
// Transient errors are retried here until the write succeeds or the stream
// drains; then the batch fails as a whole, so its messages stay uncommitted
// and are replayed, and rows written meanwhile are skipped by their keys on
// replay. When the database rejects the row written for a key, the next
// message with that key is tried in its place (dedupe).
func (o *output) WriteBatch(ctx context.Context, batch service.MessageBatch) error {
	if halted := o.scope.Halted(); halted != nil {
		return halted
	}
	o.mu.RLock()
	cp := o.copier
	o.mu.RUnlock()
	if cp == nil {
		return service.ErrNotConnected
	}
	started := time.Now()
	ctx, cancel := o.untilDrained(ctx)
	defer cancel()
	if err := o.loadSchemas(ctx, batch); err != nil {
		return err
	}
	if o.conf.exactlyOnce {
		return o.writeExactlyOnce(ctx, cp, batch, started)
	}

	failed := map[int]error{}
	enc := o.encode(batch, failed)
	defer enc.release()
	o.metrics.deleted.Incr(takeDeleted(failed))
	rows, next := dedupe(enc, enc.finish(), o.key, o.conf.conflict, failed)
	written := make([]bool, len(batch)) // by message index
	var stats pathStats
	var iso isolation
	retries, unknown := 0, 0
	var filtered []row // pendingRows' buffer, never rows itself
	for {
		pending := pendingRows(rows, written, failed, &filtered)
		if len(pending) == 0 {
			if promote(rows, next, failed) {
				continue
			}
			break
		}
		err := cp.writeIsolating(ctx, pending, failed, written, &stats, iso)
		if err == nil {
			continue
		}
		classified := result.Classify(err)
		if classified.Action() == result.Stop {
			o.stop(result.Wrap(classified.Category, classified.Code, err, "write "+o.conf.table.Sanitize()))
			o.metrics.rows(stats) // what was written before is in the table
			return err
		}
		if result.UnknownSQLSTATE(err) {
			if unknown++; unknown > unknownRetries {
				iso.unknownAfter = unknownRetries
				o.log.Warnf("Isolating the rows of %s that fail with SQLSTATE %s after %d retries: %v", o.conf.table.Sanitize(), classified.Code, unknownRetries, err)
				continue
			}
		}
		retries++
		wait := backoff(retries, o.conf.retryInitial, o.conf.retryMax)
		o.metrics.retries.Incr(1)
		o.log.Warnf("Retrying %d rows for %s in %v: %v", len(pending), o.conf.table.Sanitize(), wait, err)
		if werr := o.scope.Sleep(ctx, wait, errDraining); werr != nil {
			o.metrics.rows(stats)
			return fmt.Errorf("write %s: gave up on %d rows: %w (last error: %v)", o.conf.table.Sanitize(), len(pending), werr, err)
		}
	}
	stats.conflicts += int64(skippedDuplicates(next, failed))
	o.metrics.record(stats, time.Since(started))
	o.metrics.observeLatency(batch, written)
	if len(failed) == 0 {
		return nil
	}
	return o.handleFailures(ctx, batch, failed)
}

// pendingRows returns the rows neither written nor failed: rows itself when
// that is all of them, as it is on a first attempt, or else a copy in *buf.
func pendingRows(rows []row, written []bool, failed map[int]error, buf *[]row) []row {
	all := true
	for _, r := range rows {
		if written[r.index] || failed[r.index] != nil {
			all = false
			break
		}
	}
	if all {
		return rows
	}
	*buf = (*buf)[:0]
	for _, r := range rows {
		if !written[r.index] && failed[r.index] == nil {
			*buf = append(*buf, r)
		}
	}
	return *buf
}

// untilDrained returns ctx, cancelled also result.DrainGrace after the stream
// starts draining, and its cancel function. A healthy write or dead-letter
// write completes within the grace; one stuck on an unreachable database or
// broker is cut, and its messages are replayed.
func (o *output) untilDrained(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	go func() {
		select {
		case <-o.scope.Draining():
		case <-ctx.Done():
			return
		}
		timer := time.NewTimer(result.DrainGrace)
		defer timer.Stop()
		select {
		case <-timer.C:
			cancel(errDraining)
		case <-ctx.Done():
		}
	}()
	return ctx, func() { cancel(nil) }
}

// encode decodes each message and encodes it as a binary COPY row;
// messages that fail are recorded in failed and left out.
func (o *output) encode(batch service.MessageBatch, failed map[int]error) *encodedBatch {
	enc := newEncodedBatch(len(o.columns))
	var mapping *service.MessageBatchBloblangExecutor
	if o.conf.mapping != nil {
		mapping = batch.BloblangExecutor(o.conf.mapping)
	}
	for i, msg := range batch {
		err := o.values(mapping, i, msg, enc.cells)
		if err == nil {
			err = enc.add(i, o.columns, o.key)
		}
		if err != nil {
			failed[i] = err
		}
	}
	return enc
}

// values sets cells to the message's values in column order, as decoded or
// mapped, not yet converted for their columns.
func (o *output) values(mapping *service.MessageBatchBloblangExecutor, i int, msg *service.Message, cells []datum.Datum) error {
	if mapping == nil {
		data, err := msg.AsBytes()
		if err != nil {
			return result.Wrap(result.Business, "unreadable_message", err, "read message")
		}
		if o.conf.framed != nil {
			return o.conf.framed.DecodeInto(data, cells)
		}
		return o.conf.kind.DecodeInto(data, cells)
	}
	res, err := mapping.Query(i)
	if err != nil {
		return result.Wrap(result.Business, "mapping_failed", err, "mapping")
	}
	if res == nil {
		return errDeleted
	}
	mapped, err := res.AsStructured()
	if err != nil {
		return result.Wrap(result.Business, "mapping_failed", err, "mapping result")
	}
	obj, ok := mapped.(map[string]any)
	if !ok {
		return result.New(result.Business, "mapping_failed", fmt.Sprintf("mapping returned %T, want an object keyed by column", mapped))
	}
	found := 0
	for j, col := range o.columns {
		v, ok := obj[col.name]
		if ok {
			found++
		}
		cells[j] = fromGo(v)
	}
	if found < len(obj) {
		return o.unknownKeys(obj)
	}
	return nil
}

// unknownKeys stops the stream for a mapping that sets keys the output
// does not write: every message would lose them, so it is the pipeline's
// fault, not the message's.
func (o *output) unknownKeys(obj map[string]any) error {
	var unknown []string
	for key := range obj {
		if !slices.ContainsFunc(o.columns, func(c column) bool { return c.name == key }) {
			unknown = append(unknown, key)
		}
	}
	slices.Sort(unknown)
	names := make([]string, len(o.columns))
	for i, c := range o.columns {
		names[i] = c.name
	}
	err := result.New(result.System, "unknown_column", fmt.Sprintf(
		"the mapping sets %s, which %s does not write: the columns written are %s (a column of the table missing there needs %s)",
		strings.Join(unknown, ", "), o.conf.table.Sanitize(), strings.Join(names, ", "), fieldColumns))
	o.stop(err)
	return err
}

// writeDeadLetters sends the failed messages, in batch order, to the
// dead-letter output.
func (o *output) writeDeadLetters(ctx context.Context, batch service.MessageBatch, failed map[int]error) error {
	indexes := slices.Sorted(maps.Keys(failed))
	letters := make(service.MessageBatch, 0, len(indexes))
	for _, i := range indexes {
		letters = append(letters, deadLetter(batch[i], failed[i]))
		o.log.Debugf("Dead-lettering message %d of %s: %v", i, o.conf.table.Sanitize(), failed[i])
	}
	if err := o.deadLetter.WriteBatch(ctx, letters); err != nil {
		if ctx.Err() != nil {
			err = context.Cause(ctx) // errDraining, when the stop cut the wait
		}
		return fmt.Errorf("write dead letters: %w", err)
	}
	return nil
}

// deadLetter is the message as it arrived, with headers saying why it could
// not be written and where it came from.
func deadLetter(msg *service.Message, err error) *service.Message {
	dl := msg.Copy()
	result.MarkDeadLetter(dl, err)
	return dl
}

// Close closes the pool and the dead-letter output.
//
// Benthos closes an output without a deadline, and an owned output that
// never connected (an unreachable broker) closes only once it connects: its
// connect loop does not watch for the close. So the dead-letter output gets
// result.DrainGrace to close, and is then abandoned with an error rather than
// holding up the stop; the public API has no way to stop it harder.
func (o *output) Close(ctx context.Context) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.pool != nil {
		o.pool.Close()
		o.pool, o.copier = nil, nil
	}
	if o.deadLetter == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, result.DrainGrace)
	defer cancel()
	if err := o.deadLetter.Close(ctx); err != nil {
		return fmt.Errorf("close %s: %w", fieldDeadLetter, err)
	}
	return nil
}

// kafkaTimestamp reads the record timestamp the redpanda input sets, a
// number (or its text, from other inputs).
func kafkaTimestamp(msg *service.Message) (time.Time, bool) {
	v, ok := msg.MetaGetMut("kafka_timestamp_unix_ms")
	if !ok {
		return time.Time{}, false
	}
	switch ms := v.(type) {
	case int64:
		return time.UnixMilli(ms), true
	case string:
		n, err := strconv.ParseInt(ms, 10, 64)
		return time.UnixMilli(n), err == nil
	}
	return time.Time{}, false
}

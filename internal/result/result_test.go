package result_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http/httptest"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/qicore/qiflow/internal/result"
)

// want is what Classify must decide for an error.
type want struct {
	cat       result.Category
	code      string
	transient bool
	action    result.Action
}

func assertClassified(t *testing.T, err error, w want) *result.Error {
	t.Helper()
	e := result.Classify(err)
	require.NotNil(t, e)
	assert.Equal(t, w.cat, e.Category, "category")
	assert.Equal(t, w.code, e.Code, "code")
	assert.Equal(t, w.transient, e.Transient, "transient")
	assert.Equal(t, w.action, e.Action(), "action")
	assert.Equal(t, w.cat, result.CategoryOf(err), "CategoryOf")
	assert.Equal(t, w.action, result.ActionOf(err), "ActionOf")
	assert.Equal(t, w.action == result.Retry, result.Retryable(err), "Retryable")
	assert.ErrorIs(t, e, err, "the classified error keeps the original as its cause")
	return e
}

var (
	retrySystem   = func(code string) want { return want{result.System, code, true, result.Retry} }
	stopSystem    = func(code string) want { return want{result.System, code, false, result.Stop} }
	retryExternal = func(code string) want { return want{result.External, code, true, result.Retry} }
	deadLetter    = func(code string) want { return want{result.Business, code, false, result.DeadLetter} }
	stopSecurity  = func(code string) want { return want{result.Security, code, false, result.Stop} }
)

func TestCategoryNamesRoundTrip(t *testing.T) {
	for _, c := range []result.Category{result.System, result.Business, result.Security, result.External} {
		got, err := result.ParseCategory(c.String())
		require.NoError(t, err)
		assert.Equal(t, c, got)
	}
	assert.Equal(t, []string{"SYSTEM", "BUSINESS", "SECURITY", "EXTERNAL"},
		[]string{result.System.String(), result.Business.String(), result.Security.String(), result.External.String()})

	got, err := result.ParseCategory(" business ")
	require.NoError(t, err, "parsing ignores case and surrounding space")
	assert.Equal(t, result.Business, got)

	_, err = result.ParseCategory("FATAL")
	assert.ErrorContains(t, err, `unknown error category "FATAL"`)
	assert.Equal(t, "Category(0)", result.Category(0).String())
}

func TestActionNames(t *testing.T) {
	assert.Equal(t, "retry", result.Retry.String())
	assert.Equal(t, "dead-letter", result.DeadLetter.String())
	assert.Equal(t, "stop", result.Stop.String())
	assert.Equal(t, "Action(0)", result.Action(0).String())
}

func TestActionFollowsCategoryAndTransience(t *testing.T) {
	tests := []struct {
		cat       result.Category
		transient bool
		action    result.Action
	}{
		{result.Business, false, result.DeadLetter},
		{result.Business, true, result.DeadLetter},
		{result.Security, false, result.Stop},
		{result.Security, true, result.Stop},
		{result.System, true, result.Retry},
		{result.System, false, result.Stop},
		{result.External, true, result.Retry},
		{result.External, false, result.Stop},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s transient=%t", tt.cat, tt.transient), func(t *testing.T) {
			e := &result.Error{Category: tt.cat, Code: "x", Transient: tt.transient}
			assert.Equal(t, tt.action, e.Action())
		})
	}
}

func TestPostgresErrorsClassifyBySQLSTATE(t *testing.T) {
	tests := []struct {
		sqlstate, name string
		want           want
	}{
		{"08006", "connection_failure", retryExternal("08006")},
		{"08001", "sqlclient_unable_to_establish_sqlconnection", retryExternal("08001")},
		{"08P01", "protocol_violation", retryExternal("08P01")},
		{"40001", "serialization_failure", retrySystem("40001")},
		{"40P01", "deadlock_detected", retrySystem("40P01")},
		{"53300", "too_many_connections", retrySystem("53300")},
		{"53100", "disk_full", retrySystem("53100")},
		{"57P01", "admin_shutdown", retryExternal("57P01")},
		{"57P02", "crash_shutdown", retryExternal("57P02")},
		{"57P03", "cannot_connect_now", retryExternal("57P03")},
		{"57014", "query_canceled", retrySystem("57014")},
		{"22003", "numeric_value_out_of_range", deadLetter("22003")},
		{"22P02", "invalid_text_representation", deadLetter("22P02")},
		{"22007", "invalid_datetime_format", deadLetter("22007")},
		{"23505", "unique_violation", deadLetter("23505")},
		{"23502", "not_null_violation", deadLetter("23502")},
		{"23514", "check_violation", deadLetter("23514")},
		{"28P01", "invalid_password", stopSecurity("28P01")},
		{"28000", "invalid_authorization_specification", stopSecurity("28000")},
		{"42501", "insufficient_privilege", stopSecurity("42501")},
		{"42P01", "undefined_table", stopSystem("42P01")},
		{"42703", "undefined_column", stopSystem("42703")},
		{"3D000", "invalid_catalog_name", stopSystem("3D000")},
		{"0A000", "feature_not_supported", stopSystem("0A000")},
		{"55P03", "lock_not_available", retrySystem("55P03")},
		{"58030", "io_error", retrySystem("58030")},
		{"21000", "cardinality_violation", deadLetter("21000")},
		{"P0001", "raise_exception", deadLetter("P0001")},
		{"XX000", "internal_error (unknown: retried, bounded by the caller)", retrySystem("XX000")},
		{"QF001", "raised by a trigger (unknown: retried, bounded by the caller)", retrySystem("QF001")},
	}
	for _, tt := range tests {
		t.Run(tt.sqlstate+" "+tt.name, func(t *testing.T) {
			pgErr := &pgconn.PgError{Severity: "ERROR", Code: tt.sqlstate, Message: tt.name}
			err := fmt.Errorf("copy into crypto_prices: %w", pgErr)

			e := assertClassified(t, err, tt.want)

			var found *pgconn.PgError
			require.ErrorAs(t, e, &found, "the PgError stays reachable")
			assert.Same(t, pgErr, found)
		})
	}
}

func TestAnUnknownSQLSTATEIsMarkedSoItsRetriesCanBeBounded(t *testing.T) {
	tests := []struct {
		name    string
		err     error
		unknown bool
	}{
		{"raised by a trigger", fmt.Errorf("upsert: %w", &pgconn.PgError{Code: "QF001"}), true},
		{"internal error", &pgconn.PgError{Code: "XX000"}, true},
		{"deadlock (known transient)", &pgconn.PgError{Code: "40P01"}, false},
		{"connection failure (known transient)", &pgconn.PgError{Code: "08006"}, false},
		{"check violation (known row fault)", &pgconn.PgError{Code: "23514"}, false},
		{"classified by the caller", result.Wrap(result.Business, "QF001", &pgconn.PgError{Code: "QF001"}, "rejected"), false},
		{"not from PostgreSQL", errors.New("something odd"), false},
		{"nil", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.unknown, result.UnknownSQLSTATE(tt.err))
		})
	}
}

func TestPostgresErrorKeepsServerMessageAndNames(t *testing.T) {
	pgErr := &pgconn.PgError{
		Severity:   "ERROR",
		Code:       "22003",
		Message:    "numeric field overflow",
		Detail:     "A field with precision 20, scale 8 must round to an absolute value less than 10^12.",
		ColumnName: "usd_price",
		TableName:  "crypto_prices",
	}
	e := result.Classify(pgErr)

	assert.Equal(t, "numeric field overflow", e.Message)
	assert.Equal(t, map[string]string{
		"column": "usd_price",
		"table":  "crypto_prices",
		"detail": pgErr.Detail,
	}, e.Context)
	assert.Equal(t, `BUSINESS 22003 (column=usd_price, `+
		`detail="A field with precision 20, scale 8 must round to an absolute value less than 10^12.", `+
		`table=crypto_prices): ERROR: numeric field overflow (SQLSTATE 22003)`, e.Error(),
		"the server's message is said once, by the cause")

	unique := result.Classify(&pgconn.PgError{Severity: "ERROR", Code: "23505", Message: "duplicate key", ConstraintName: "crypto_prices_pkey"})
	assert.Equal(t, map[string]string{"constraint": "crypto_prices_pkey"}, unique.Context)
}

// fakePostgres accepts one connection, reads the startup message and answers
// with resp, as a server rejecting a login does.
func fakePostgres(t *testing.T, resp *pgproto3.ErrorResponse) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		backend := pgproto3.NewBackend(conn, conn)
		if _, err := backend.ReceiveStartupMessage(); err != nil {
			return
		}
		if resp != nil {
			backend.Send(resp)
			_ = backend.Flush()
		}
		_, _ = io.Copy(io.Discard, conn)
	}()
	return ln.Addr().String()
}

// closedPort returns a 127.0.0.1 address that refuses connections.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

func TestPostgresConnectErrors(t *testing.T) {
	ctx := context.Background()

	t.Run("a wrong password is SECURITY, not a connect failure to retry", func(t *testing.T) {
		addr := fakePostgres(t, &pgproto3.ErrorResponse{
			Severity: "FATAL", Code: "28P01", Message: `password authentication failed for user "qiflow"`,
		})
		_, err := pgconn.Connect(ctx, "postgres://qiflow:wrong@"+addr+"/qiflow?sslmode=disable")
		require.Error(t, err)

		assertClassified(t, err, stopSecurity("28P01"))
		var connectErr *pgconn.ConnectError
		assert.ErrorAs(t, result.Classify(err), &connectErr)
	})

	t.Run("a refused connection is EXTERNAL connect_failed", func(t *testing.T) {
		_, err := pgconn.Connect(ctx, "postgres://qiflow@"+closedPort(t)+"/qiflow?sslmode=disable")
		require.Error(t, err)

		assertClassified(t, err, retryExternal("connect_failed"))
		assert.ErrorIs(t, err, syscall.ECONNREFUSED)
	})

	t.Run("a server that never answers is EXTERNAL timeout", func(t *testing.T) {
		addr := fakePostgres(t, nil)
		ctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		_, err := pgconn.Connect(ctx, "postgres://qiflow@"+addr+"/qiflow?sslmode=disable")
		require.Error(t, err)
		require.True(t, pgconn.Timeout(err))

		assertClassified(t, err, retryExternal("timeout"))
	})

	t.Run("a malformed DATABASE_URL stops", func(t *testing.T) {
		_, err := pgconn.ParseConfig("postgres://qiflow@localhost:notaport/qiflow")
		require.Error(t, err)

		assertClassified(t, err, stopSystem("config"))
	})
}

func TestKafkaErrorsClassifyByCode(t *testing.T) {
	tests := []struct {
		err  *kerr.Error
		want want
	}{
		{kerr.SaslAuthenticationFailed, stopSecurity("SASL_AUTHENTICATION_FAILED")},
		{kerr.IllegalSaslState, stopSecurity("ILLEGAL_SASL_STATE")},
		{kerr.UnsupportedSaslMechanism, stopSecurity("UNSUPPORTED_SASL_MECHANISM")},
		{kerr.TopicAuthorizationFailed, stopSecurity("TOPIC_AUTHORIZATION_FAILED")},
		{kerr.GroupAuthorizationFailed, stopSecurity("GROUP_AUTHORIZATION_FAILED")},
		{kerr.ClusterAuthorizationFailed, stopSecurity("CLUSTER_AUTHORIZATION_FAILED")},
		{kerr.TransactionalIDAuthorizationFailed, stopSecurity("TRANSACTIONAL_ID_AUTHORIZATION_FAILED")},
		{kerr.DelegationTokenAuthorizationFailed, stopSecurity("DELEGATION_TOKEN_AUTHORIZATION_FAILED")},
		{kerr.MessageTooLarge, deadLetter("MESSAGE_TOO_LARGE")},
		{kerr.InvalidRecord, deadLetter("INVALID_RECORD")},
		{kerr.CorruptMessage, deadLetter("CORRUPT_MESSAGE")},
		{kerr.RecordListTooLarge, deadLetter("RECORD_LIST_TOO_LARGE")},
		{kerr.InvalidTimestamp, deadLetter("INVALID_TIMESTAMP")},
		{kerr.NotLeaderForPartition, retryExternal("NOT_LEADER_FOR_PARTITION")},
		{kerr.UnknownTopicOrPartition, retryExternal("UNKNOWN_TOPIC_OR_PARTITION")},
		{kerr.RequestTimedOut, retryExternal("REQUEST_TIMED_OUT")},
		{kerr.InvalidTopicException, stopSystem("INVALID_TOPIC_EXCEPTION")},
		{kerr.UnknownServerError, stopSystem("UNKNOWN_SERVER_ERROR")},
	}
	for _, tt := range tests {
		t.Run(tt.err.Message, func(t *testing.T) {
			err := fmt.Errorf("poll crypto-prices: %w", tt.err)

			assertClassified(t, err, tt.want)
			assert.ErrorIs(t, result.Classify(err), tt.err, "kerr values are still found by pointer")
		})
	}
}

func TestKafkaSASLFailureAsKgoReturnsIt(t *testing.T) {
	// kgo wraps the SaslAuthenticate response's code and message like this
	// (errCodeMessage in pkg/kgo/errors.go).
	brokerMsg := "Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-256"
	err := fmt.Errorf("unable to dial: %w", fmt.Errorf("%w: %s", kerr.SaslAuthenticationFailed, brokerMsg))

	e := assertClassified(t, err, stopSecurity("SASL_AUTHENTICATION_FAILED"))
	assert.Equal(t, "SECURITY SASL_AUTHENTICATION_FAILED: unable to dial: SASL_AUTHENTICATION_FAILED: SASL Authentication failed.: "+brokerMsg, e.Error())
}

func TestKgoClientErrors(t *testing.T) {
	t.Run("a closed client stops", func(t *testing.T) {
		assertClassified(t, fmt.Errorf("produce: %w", kgo.ErrClientClosed), stopSystem("client_closed"))
	})
	t.Run("a broker that hangs up at once hints at TLS or SASL and retries", func(t *testing.T) {
		e := assertClassified(t, fmt.Errorf("fetch: %w", &kgo.ErrFirstReadEOF{}), retryExternal("first_read_eof"))
		assert.Contains(t, e.Message, "TLS")
		assert.Contains(t, e.Message, "SASL")
	})
	t.Run("a produce timeout retries", func(t *testing.T) {
		assertClassified(t, kgo.ErrRecordTimeout, retryExternal("record_timeout"))
		assertClassified(t, kgo.ErrRecordRetries, retryExternal("record_retries"))
	})
	t.Run("a produce timeout caused by missing ACLs stops", func(t *testing.T) {
		// kgo reports the last retried error next to the timeout.
		err := fmt.Errorf("%w, last err: %w", kgo.ErrRecordTimeout, kerr.TopicAuthorizationFailed)
		assertClassified(t, err, stopSecurity("TOPIC_AUTHORIZATION_FAILED"))
	})
	t.Run("a batch too large to decompress stops", func(t *testing.T) {
		assertClassified(t, &kgo.ErrDecompressTooLarge{Topic: "crypto-prices"}, stopSystem("decompress_too_large"))
	})
}

func TestNetworkErrorsRetry(t *testing.T) {
	_, refused := net.Dial("tcp", closedPort(t))
	require.ErrorIs(t, refused, syscall.ECONNREFUSED)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	require.NoError(t, client.SetReadDeadline(time.Now()))
	_, deadline := client.Read(make([]byte, 1))
	require.ErrorIs(t, deadline, os.ErrDeadlineExceeded)
	require.NoError(t, client.Close())
	_, closed := client.Read(make([]byte, 1))
	require.ErrorIs(t, closed, net.ErrClosed)

	tests := map[string]error{
		"connection refused (real dial)":  refused,
		"DNS lookup failed":               &net.DNSError{Err: "no such host", Name: "redpanda.invalid", IsNotFound: true},
		"connection reset":                &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)},
		"broken pipe":                     fmt.Errorf("write batch: %w", syscall.EPIPE),
		"EOF":                             fmt.Errorf("read response: %w", io.EOF),
		"unexpected EOF":                  io.ErrUnexpectedEOF,
		"read deadline (real net.Error)":  deadline,
		"use of closed connection (real)": closed,
		"pgconn closed the connection":    fmt.Errorf("copy: %w", pgconn.ErrConnClosed),
		"network unreachable":             syscall.ENETUNREACH,
	}
	for name, err := range tests {
		t.Run(name, func(t *testing.T) {
			assertClassified(t, err, retryExternal("network"))
		})
	}
}

func TestFileSystemErrnoIsNotANetworkError(t *testing.T) {
	// syscall.Errno implements net.Error; only connection errnos count.
	_, err := os.Open("/nonexistent/qiflow.yaml")
	require.Error(t, err)

	assertClassified(t, err, retrySystem("unknown"))
}

func TestUntrustedTLSCertificateStops(t *testing.T) {
	srv := httptest.NewUnstartedServer(nil)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	defer srv.Close()
	conn, err := tls.Dial("tcp", srv.Listener.Addr().String(), &tls.Config{ServerName: "example.com"})
	if conn != nil {
		conn.Close()
	}
	require.Error(t, err)

	assertClassified(t, fmt.Errorf("dial broker: %w", err), stopSecurity("tls_verification_failed"))
}

func TestContextErrors(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	assertClassified(t, fmt.Errorf("write: %w", ctx.Err()), retrySystem("canceled"))
	assertClassified(t, fmt.Errorf("write: %w", context.DeadlineExceeded), retryExternal("timeout"))
}

func TestUnknownErrorsRetryRatherThanLoseTheMessage(t *testing.T) {
	e := assertClassified(t, errors.New("something odd"), retrySystem("unknown"))
	assert.Equal(t, "SYSTEM unknown: something odd", e.Error())
}

func TestNilIsNoError(t *testing.T) {
	assert.Nil(t, result.Classify(nil))
	assert.Zero(t, result.CategoryOf(nil))
	assert.Zero(t, result.ActionOf(nil))
	assert.False(t, result.Retryable(nil))
}

func TestClassifyReturnsAnExistingErrorAsIs(t *testing.T) {
	invalid := result.Businessf("invalid_json", "price message at offset %d", 42)
	assert.Same(t, invalid, result.Classify(fmt.Errorf("decode: %w", invalid)))

	// The outermost *Error wins over the codes beneath it.
	outage := &pgconn.PgError{Severity: "FATAL", Code: "08006", Message: "connection failure"}
	recategorised := result.Wrap(result.System, "schema_missing", outage, "hypertable crypto_prices is missing")
	assert.Same(t, recategorised, result.Classify(recategorised))
	assert.Equal(t, result.Stop, result.ActionOf(recategorised))
}

func TestErrorsIsAndAsThroughWrapping(t *testing.T) {
	pgErr := &pgconn.PgError{Severity: "ERROR", Code: "23502", Message: "null value in column \"usd_price\""}
	classified := result.Classify(pgErr)
	err := fmt.Errorf("write batch: %w", classified)

	t.Run("category sentinels match a classified error", func(t *testing.T) {
		assert.ErrorIs(t, err, result.ErrBusiness)
		assert.NotErrorIs(t, err, result.ErrSystem)
		assert.NotErrorIs(t, err, result.ErrSecurity)
		assert.NotErrorIs(t, err, result.ErrExternal)
	})
	t.Run("category sentinels do not match an error never classified", func(t *testing.T) {
		assert.NotErrorIs(t, pgErr, result.ErrBusiness)
		assert.Equal(t, result.Business, result.CategoryOf(pgErr))
	})
	t.Run("the cause is still found", func(t *testing.T) {
		var found *pgconn.PgError
		require.ErrorAs(t, err, &found)
		assert.Same(t, pgErr, found)

		var e *result.Error
		require.ErrorAs(t, err, &e)
		assert.Same(t, classified, e)
	})
	t.Run("an *Error is a sentinel for its category and code", func(t *testing.T) {
		errInvalidJSON := result.New(result.Business, "invalid_json", "message is not valid JSON")
		got := fmt.Errorf("decode: %w", errInvalidJSON.With("offset", "42"))

		assert.ErrorIs(t, got, errInvalidJSON)
		assert.NotErrorIs(t, got, result.New(result.Business, "validation", ""))
		assert.NotErrorIs(t, got, result.New(result.System, "invalid_json", ""))
	})
	t.Run("sentinels are themselves errors", func(t *testing.T) {
		assert.EqualError(t, result.ErrSecurity, "SECURITY error")
		assert.ErrorIs(t, result.ErrSecurity, result.ErrSecurity)
	})
}

func TestErrorText(t *testing.T) {
	cause := errors.New("ERROR: numeric field overflow (SQLSTATE 22003)")
	tests := []struct {
		name string
		err  *result.Error
		want string
	}{
		{"category, code and message",
			result.New(result.Business, "validation", "usdPrice must be > 0"),
			"BUSINESS validation: usdPrice must be > 0"},
		{"context after the message",
			result.New(result.Business, "22003", "numeric field overflow").With("column", "usd_price"),
			"BUSINESS 22003: numeric field overflow (column=usd_price)"},
		{"cause last",
			result.Wrap(result.Business, "invalid_json", errors.New("unexpected end of JSON input"), "decode price"),
			"BUSINESS invalid_json: decode price: unexpected end of JSON input"},
		{"message equal to the cause is said once",
			result.Wrap(result.System, "unknown", errors.New("boom"), "boom"),
			"SYSTEM unknown: boom"},
		{"message contained in the cause is said once",
			result.Wrap(result.Business, "22003", cause, "numeric field overflow").With("column", "usd_price"),
			"BUSINESS 22003 (column=usd_price): ERROR: numeric field overflow (SQLSTATE 22003)"},
		{"no message",
			result.Wrap(result.External, "network", io.EOF, ""),
			"EXTERNAL network: EOF"},
		{"no code",
			result.New(result.Security, "", "SASL credentials rejected"),
			"SECURITY: SASL credentials rejected"},
		{"nil cause is allowed",
			result.Wrap(result.System, "config", nil, "no brokers configured"),
			"SYSTEM config: no brokers configured"},
		{"context sorted by key, odd values quoted",
			result.New(result.Business, "validation", "high < low").
				With("topic", "crypto-ohlcv").With("coin", "bitcoin").With("exchange", "coin base").With("symbol", ""),
			`BUSINESS validation: high < low (coin=bitcoin, exchange="coin base", symbol="", topic=crypto-ohlcv)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.err.Error())
		})
	}
}

func TestWithReturnsACopy(t *testing.T) {
	base := result.New(result.Business, "validation", "price must be > 0")
	first := base.With("column", "usd_price")
	second := first.With("column", "close").With("table", "crypto_ohlcv")

	assert.Empty(t, base.Context)
	assert.Equal(t, map[string]string{"column": "usd_price"}, first.Context)
	assert.Equal(t, map[string]string{"column": "close", "table": "crypto_ohlcv"}, second.Context)
}

func TestAsTransientTurnsStopIntoRetry(t *testing.T) {
	dlqDown := result.Wrap(result.External, "dlq_produce", io.EOF, "produce dead letter")
	assert.Equal(t, result.Stop, dlqDown.Action(), "New and Wrap are not transient")

	retried := dlqDown.AsTransient()
	assert.Equal(t, result.Retry, retried.Action())
	assert.False(t, dlqDown.Transient, "the original is unchanged")
}

func TestBusinessf(t *testing.T) {
	e := result.Businessf("validation", "timeframe %q is not one of 1m 5m 15m 1h 4h 1d 1w", "2h")
	assert.Equal(t, result.DeadLetter, e.Action())
	assert.Nil(t, e.Cause)
	assert.Equal(t, `BUSINESS validation: timeframe "2h" is not one of 1m 5m 15m 1h 4h 1d 1w`, e.Error())

	numErr := &pgconn.PgError{Code: "22P02"}
	wrapped := result.Businessf("invalid_number", "usdPrice %q: %w", "1e", numErr)
	assert.ErrorIs(t, wrapped, numErr, "%w makes the argument reachable")
	assert.Equal(t, `BUSINESS invalid_number: usdPrice "1e": `+numErr.Error(), wrapped.Error())
	assert.Equal(t, "invalid_number", result.Classify(wrapped).Code)
}

func TestResult(t *testing.T) {
	ok := result.OK(67234.5)
	assert.True(t, ok.IsOK())
	v, err := ok.Unwrap()
	assert.NoError(t, err)
	assert.Equal(t, 67234.5, v)

	bad := result.Fail[float64](result.Businessf("validation", "usdPrice must be > 0"))
	assert.False(t, bad.IsOK())
	v, err = bad.Unwrap()
	assert.Zero(t, v)
	assert.ErrorIs(t, err, result.ErrBusiness)

	assert.True(t, result.Fail[string](nil).IsOK(), "Fail(nil) is OK")
}

// genericStore stands in for *service.Resources.
type genericStore struct {
	values *sync.Map
	stream string
}

func newStore() genericStore { return genericStore{values: &sync.Map{}} }

func (g genericStore) GetOrSetGeneric(key, value any) (any, bool) {
	return g.values.LoadOrStore(key, value)
}
func (g genericStore) StreamID() string { return g.stream }

func TestHaltKeepsTheFirstError(t *testing.T) {
	t.Cleanup(result.ResetHalt)
	result.ResetHalt()
	scope := result.ScopeOf(newStore())
	assert.NoError(t, scope.Halted())

	scope.Halt(nil)
	assert.NoError(t, scope.Halted(), "nil is ignored")
	assert.NoError(t, result.Halted())

	first := result.New(result.Security, "28P01", "password authentication failed")
	scope.Halt(first)
	scope.Halt(errors.New("context canceled while shutting down"))
	assert.Same(t, first, scope.Halted())
	assert.Same(t, first, result.Halted(), "the process records it too")

	result.ResetHalt()
	assert.NoError(t, result.Halted())
	assert.Same(t, first, scope.Halted(), "the stream stays halted")
}

func TestHaltIsScopedToItsStream(t *testing.T) {
	t.Cleanup(result.ResetHalt)
	result.ResetHalt()
	store := newStore()
	a, sameA, b := result.ScopeOf(store), result.ScopeOf(store), result.ScopeOf(newStore())
	assert.Same(t, a, sameA, "components of one stream share a scope")
	// Benthos's streams mode: one store, streams told apart by id.
	shared := newStore()
	shared.stream = "prices"
	c := result.ScopeOf(shared)
	shared.stream = "ohlcv"
	d := result.ScopeOf(shared)

	a.Halt(result.New(result.Security, "28P01", "password authentication failed"))
	c.Halt(result.New(result.Security, "28P01", "password authentication failed"))
	assert.Error(t, sameA.Halted())
	assert.NoError(t, b.Halted(), "another stream runs on")
	assert.NoError(t, d.Halted(), "another stream of the same store runs on")
}

func TestHaltIsSafeForConcurrentUse(t *testing.T) {
	t.Cleanup(result.ResetHalt)
	result.ResetHalt()
	scope := result.ScopeOf(newStore())

	const n = 64
	errs := make([]error, n)
	for i := range errs {
		errs[i] = fmt.Errorf("pipeline %d failed", i)
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for _, err := range errs {
		wg.Go(func() {
			<-start
			scope.Halt(err)
			assert.Error(t, scope.Halted())
		})
	}
	close(start)
	wg.Wait()

	winner := scope.Halted()
	assert.Contains(t, errs, winner, "one of the reported errors is kept")
	for _, err := range errs {
		scope.Halt(err)
	}
	assert.Same(t, winner, scope.Halted(), "and it is never replaced")
	assert.Same(t, winner, result.Halted())
}

// metadata stands in for *service.Message.
type metadata map[string]any

func (m metadata) MetaGet(key string) (string, bool) {
	v, ok := m[key].(string)
	return v, ok
}
func (m metadata) MetaSetMut(key string, value any) { m[key] = value }

func TestMarkDeadLetterSetsTheHeadersOfDESIGN(t *testing.T) {
	m := metadata{"kafka_topic": "crypto-prices", "kafka_partition": "7", "kafka_offset": "1234"}
	got := result.MarkDeadLetter(m, result.Businessf("validation", "usdPrice must be > 0, got %s", "-1"))
	assert.Equal(t, result.Business, got.Category)
	assert.Equal(t, metadata{
		"kafka_topic": "crypto-prices", "kafka_partition": "7", "kafka_offset": "1234",
		"qiflow-error-category": "BUSINESS", "qiflow-error-code": "validation",
		"qiflow-error":        "BUSINESS validation: usdPrice must be > 0, got -1",
		"qiflow-source-topic": "crypto-prices", "qiflow-source-partition": "7", "qiflow-source-offset": "1234",
	}, m)

	produced := metadata{}
	result.MarkDeadLetter(produced, errors.New("no exchange id"))
	assert.NotContains(t, produced, "qiflow-source-topic", "a message no input read has no source")
	assert.Equal(t, "SYSTEM", produced["qiflow-error-category"])
}

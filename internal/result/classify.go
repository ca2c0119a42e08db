package result

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Classify returns the *Error for err: the first *Error in err's chain as is,
// or else a new one classified by the types and codes in the chain, with err
// as its Cause. It returns nil only for a nil err. What it does not recognise
// is a transient SYSTEM error with code "unknown": retried, never lost.
func Classify(err error) *Error {
	if err == nil {
		return nil
	}
	if e, ok := errors.AsType[*Error](err); ok {
		return e
	}
	if pg, ok := errors.AsType[*pgconn.PgError](err); ok {
		return classifyPostgres(pg, err)
	}
	if ke, ok := errors.AsType[*kerr.Error](err); ok {
		return classifyKafka(ke, err)
	}
	for _, r := range rules {
		if r.match(err) {
			return &Error{Category: r.cat, Code: r.code, Message: r.msg, Transient: r.transient, Cause: err}
		}
	}
	return &Error{Category: System, Code: "unknown", Transient: true, Cause: err}
}

// classifyPostgres classifies by SQLSTATE and keeps the server's message and
// the names it reports. See the SQLSTATE table in the PostgreSQL manual,
// appendix A.
func classifyPostgres(pg *pgconn.PgError, err error) *Error {
	e := &Error{Code: pg.Code, Message: pg.Message, Cause: err}
	e.Category, e.Transient, _ = postgresCategory(pg.Code)
	for k, v := range map[string]string{
		"column":     pg.ColumnName,
		"constraint": pg.ConstraintName,
		"table":      pg.TableName,
		"detail":     pg.Detail,
	} {
		if v != "" {
			if e.Context == nil {
				e.Context = map[string]string{}
			}
			e.Context[k] = v
		}
	}
	return e
}

// postgresCategory is the category of a SQLSTATE, whether it is worth
// retrying, and whether it is one this table knows. An unknown SQLSTATE is a
// transient SYSTEM error, retried in case it passes; see UnknownSQLSTATE for
// why that retry must be bounded.
func postgresCategory(code string) (cat Category, transient, known bool) {
	class := code[:min(2, len(code))]
	switch {
	case code == "40001", code == "40P01": // serialization failure, deadlock
		return System, true, true
	case code == "57014": // query_canceled, e.g. statement_timeout
		return System, true, true
	case code == "55P03": // lock_not_available, e.g. lock_timeout
		return System, true, true
	case code == "57P01", code == "57P02", code == "57P03": // server shutting down or starting
		return External, true, true
	case code == "42501": // insufficient_privilege
		return Security, false, true
	case code == "3D000", code == "0A000": // no such database, feature not supported
		return System, false, true
	case code == "21000": // cardinality_violation: one statement met the same row twice
		return Business, false, true
	case class == "08": // connection exception
		return External, true, true
	case class == "53", class == "58": // insufficient resources, system (I/O) error
		return System, true, true
	case class == "22", class == "23": // data exception, integrity violation
		return Business, false, true
	case class == "P0": // raised by PL/pgSQL, e.g. a trigger rejecting the row
		return Business, false, true
	case class == "28": // invalid authorization
		return Security, false, true
	case class == "42": // undefined table or column, syntax: the configuration is wrong
		return System, false, true
	}
	// XX internal errors and anything not listed.
	return System, true, false
}

// UnknownSQLSTATE reports whether err is a PostgreSQL error that Classify
// retries only because it does not know its SQLSTATE (XX000, or one raised
// by an extension or a trigger, such as 'QF001'). The server answered, so the
// connection works, and a retry may fail the same way forever: a caller that
// can isolate rows retries such an error a bounded number of times and then
// treats it as the fault of the rows it was writing, as BUSINESS.
func UnknownSQLSTATE(err error) bool {
	pg, ok := errors.AsType[*pgconn.PgError](err)
	if !ok {
		return false
	}
	if e := Classify(err); !e.Transient || e.Code != pg.Code {
		return false // classified otherwise by whoever wrapped it
	}
	_, _, known := postgresCategory(pg.Code)
	return !known
}

// kafkaCategories lists the Kafka errors whose category does not follow from
// kerr's Retriable flag. kerr errors are compared by pointer.
var kafkaCategories = map[*kerr.Error]Category{
	kerr.SaslAuthenticationFailed:           Security,
	kerr.IllegalSaslState:                   Security,
	kerr.UnsupportedSaslMechanism:           Security,
	kerr.TopicAuthorizationFailed:           Security,
	kerr.GroupAuthorizationFailed:           Security,
	kerr.ClusterAuthorizationFailed:         Security,
	kerr.TransactionalIDAuthorizationFailed: Security,
	kerr.DelegationTokenAuthorizationFailed: Security,
	// Only the offending record is bad.
	kerr.MessageTooLarge:    Business,
	kerr.InvalidRecord:      Business,
	kerr.CorruptMessage:     Business,
	kerr.RecordListTooLarge: Business,
	kerr.InvalidTimestamp:   Business,
}

// classifyKafka classifies a broker error code. A failed SASL exchange
// reaches here too: kgo returns the broker's kerr error, wrapped with the
// broker's message by fmt.Errorf.
func classifyKafka(ke *kerr.Error, err error) *Error {
	e := &Error{Code: ke.Message, Message: ke.Description, Cause: err}
	if cat, ok := kafkaCategories[ke]; ok {
		e.Category = cat
	} else if ke.Retriable {
		e.Category, e.Transient = External, true
	} else {
		e.Category = System
	}
	return e
}

// rule classifies the errors it matches; rules are tried in order.
type rule struct {
	match     func(error) bool
	cat       Category
	code      string
	msg       string
	transient bool
}

// rules classifies what is neither a PostgreSQL nor a Kafka error code. The
// order matters where one error wraps another: a TLS or configuration failure
// inside a connect error stops, a canceled connect is "canceled", and
// kgo.ErrFirstReadEOF wraps io.EOF.
var rules = []rule{
	{match: isTLSVerification, cat: Security, code: "tls_verification_failed"},
	{match: isType[*pgconn.ParseConfigError], cat: System, code: "config"},
	{match: is(kgo.ErrClientClosed), cat: System, code: "client_closed"},
	{match: isType[*kgo.ErrDecompressTooLarge], cat: System, code: "decompress_too_large"},
	{match: is(context.Canceled), cat: System, code: "canceled", transient: true},
	{match: isType[*kgo.ErrFirstReadEOF], cat: External, code: "first_read_eof", transient: true,
		msg: "broker closed the connection on the first read; check that the client's TLS and SASL settings match the broker's listener"},
	{match: is(kgo.ErrRecordTimeout), cat: External, code: "record_timeout", transient: true},
	{match: is(kgo.ErrRecordRetries), cat: External, code: "record_retries", transient: true},
	{match: pgconn.Timeout, cat: External, code: "timeout", transient: true},
	{match: is(context.DeadlineExceeded), cat: External, code: "timeout", transient: true},
	{match: isType[*pgconn.ConnectError], cat: External, code: "connect_failed", transient: true},
	{match: isNetwork, cat: External, code: "network", transient: true},
}

func is(target error) func(error) bool {
	return func(err error) bool { return errors.Is(err, target) }
}

func isType[T error](err error) bool {
	_, ok := errors.AsType[T](err)
	return ok
}

// isTLSVerification matches a peer certificate that is not trusted, expired
// or for another host: retrying cannot fix it.
func isTLSVerification(err error) bool {
	return isType[*tls.CertificateVerificationError](err) ||
		isType[x509.UnknownAuthorityError](err) ||
		isType[x509.HostnameError](err) ||
		isType[x509.CertificateInvalidError](err)
}

// networkErrnos are the system errors of a connection that failed or broke.
var networkErrnos = []error{
	syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED, syscall.EPIPE,
	syscall.ETIMEDOUT, syscall.EHOSTUNREACH, syscall.ENETUNREACH,
	io.EOF, io.ErrUnexpectedEOF, net.ErrClosed, pgconn.ErrConnClosed,
}

// isNetwork matches a net.Error (*net.OpError, *net.DNSError, ...) or one of
// networkErrnos. A bare syscall.Errno also implements net.Error, so it counts
// only when listed: a file system ENOSPC is not a network error.
func isNetwork(err error) bool {
	if ne, ok := errors.AsType[net.Error](err); ok {
		if _, errno := ne.(syscall.Errno); !errno {
			return true
		}
	}
	for _, target := range networkErrnos {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

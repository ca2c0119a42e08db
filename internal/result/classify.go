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
	class := pg.Code[:min(2, len(pg.Code))]
	switch {
	case pg.Code == "40001", pg.Code == "40P01": // serialization failure, deadlock
		e.Category, e.Transient = System, true
	case pg.Code == "57014": // query_canceled, e.g. statement_timeout
		e.Category, e.Transient = System, true
	case pg.Code == "57P01", pg.Code == "57P02", pg.Code == "57P03": // server shutting down or starting
		e.Category, e.Transient = External, true
	case pg.Code == "42501": // insufficient_privilege
		e.Category = Security
	case pg.Code == "3D000", pg.Code == "0A000": // no such database, feature not supported
		e.Category = System
	case class == "08": // connection exception
		e.Category, e.Transient = External, true
	case class == "53": // insufficient resources
		e.Category, e.Transient = System, true
	case class == "22", class == "23": // data exception, integrity violation
		e.Category = Business
	case class == "28": // invalid authorization
		e.Category = Security
	case class == "42": // undefined table or column, syntax: the configuration is wrong
		e.Category = System
	default: // XX internal errors and anything unknown
		e.Category, e.Transient = System, true
	}
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

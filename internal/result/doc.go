// Package result is qiflow's error taxonomy: it decides whether a failed
// message is retried, dead-lettered or stops the pipeline.
//
// Every error falls into one of four categories. BUSINESS errors are about
// one message (bad JSON, a failed validation, SQLSTATE class 22 or 23): only
// that message goes to the dead-letter topic. SECURITY errors (SQLSTATE class
// 28, 42501, SASL and authorization failures, untrusted certificates) stop
// the pipeline at once, because retrying cannot fix them and must not spin.
// SYSTEM and EXTERNAL errors are ours or a dependency's: when Transient they
// are retried with backoff until shutdown and never dead-lettered; otherwise
// (a missing table, a closed client) they stop the pipeline.
//
// Classify maps any error to an *Error using codes and types only (SQLSTATEs,
// franz-go's kerr values, net and context errors), never message text.
// Anything it does not recognise is a transient SYSTEM error, so an unknown
// failure is retried rather than a message lost.
package result

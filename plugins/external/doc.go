// Package external provides the external processor: it hands batches of
// messages to an out-of-process plugin, built with package pluginsdk and
// run with hashicorp/go-plugin over gRPC, and keeps that plugin running:
// health checks, restarts with backoff within a budget, the batch in flight
// retried on the new process, and clear failure when the budget runs out.
// docs/plugins.md describes plugins, the processor and its guarantees.
package external

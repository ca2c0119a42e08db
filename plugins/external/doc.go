// Package external provides the external processor: batches of messages
// handed to an out-of-process plugin over hashicorp/go-plugin (issue 7).
package external

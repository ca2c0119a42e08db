// Package timescaleinput is the `timescale` input: it reads a table back out
// for a time range, or tails it. (Being built: issue 15.)
package timescaleinput

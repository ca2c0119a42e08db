#!/usr/bin/env bash
# Reads `go test -bench` output on stdin, passes it through, and ends with a
# table of every benchmark's custom rate metrics (…/s) and ns/op.
set -euo pipefail
out=$(cat)
printf '%s\n' "$out"
printf '\n%-60s %16s %16s\n' "benchmark" "rate" "ns/op"
printf '%s\n' "$out" | awk '/^Benchmark/ {
  name=$1; rate="-"; ns="-";
  for (i=2; i<=NF; i++) {
    if ($i ~ /\/s$/) rate=$(i-1) " " $i;
    if ($i == "ns/op") ns=$(i-1);
  }
  printf "%-60s %16s %16s\n", name, rate, ns
}'

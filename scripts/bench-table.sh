#!/usr/bin/env bash
# Reads `go test -bench` output on stdin, passes it through, and ends with a
# table of every benchmark's ns/op and custom metrics: rates (…/s), CPU per
# 1,000 rows (…-ms/krow), ratios to a reference (vs-ref-…), counts.
set -euo pipefail
out=$(cat)
printf '%s\n' "$out"
printf '\n%-56s %16s  %s\n' "benchmark" "ns/op" "metrics"
printf '%s\n' "$out" | awk '/^Benchmark/ && $2 ~ /^[0-9]+$/ {
  name=$1; ns="-"; metrics="";
  # $2 is the iteration count; value-unit pairs follow.
  for (i=3; i<NF; i+=2) {
    if ($(i+1) == "ns/op") ns=$i;
    else metrics = metrics (metrics == "" ? "" : "  ") $i " " $(i+1);
  }
  printf "%-56s %16s  %s\n", name, ns, metrics
}'

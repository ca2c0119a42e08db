#!/usr/bin/env bash
# Best effort: installs Debian's docker-compose, which only validates
# docker-compose.yml offline in the tests (no Docker engine is needed). The
# test that uses it skips with a clear message when it is missing.
set -uo pipefail
command -v docker-compose >/dev/null 2>&1 && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  (apt-get update -qq && apt-get install -y -qq docker-compose >/dev/null) ||
    echo "could not install docker-compose; the compose file check will be skipped" >&2
fi
exit 0

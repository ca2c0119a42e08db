#!/usr/bin/env bash
# Makes sure PostgreSQL's server binaries (initdb, postgres) are installed,
# because the tests start their own throwaway cluster from them. As root on
# Debian or Ubuntu it installs them; otherwise it says what to install.
set -euo pipefail

have_server() {
  command -v initdb >/dev/null 2>&1 && command -v postgres >/dev/null 2>&1 && return 0
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}

if have_server && id postgres >/dev/null 2>&1; then
  exit 0
fi
if [ -n "${QIFLOW_TEST_DATABASE_URL:-}" ]; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "PostgreSQL server binaries are missing: installing them from the distribution's packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq postgresql >/dev/null
  have_server && id postgres >/dev/null 2>&1 && exit 0
  echo "installing postgresql did not provide initdb and the postgres user" >&2
  exit 1
fi
cat >&2 <<'MSG'
The tests need PostgreSQL's server binaries (initdb, postgres) and a 'postgres' OS user.
Install them with:   sudo apt-get install -y postgresql
or point the tests at a server you run:   export QIFLOW_TEST_DATABASE_URL=postgres://user@host:5432/postgres
MSG
exit 1

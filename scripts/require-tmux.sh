#!/usr/bin/env bash
# Makes sure tmux is installed: the tests that use qiflow the way a person
# does, at a terminal (Ctrl-C on `make demo`, the live summary), run it in
# a real terminal under tmux. As root on Debian or Ubuntu it installs it;
# otherwise it says what to install.
set -euo pipefail
command -v tmux >/dev/null 2>&1 && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "tmux is missing: installing it from the distribution's packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq tmux >/dev/null
  exit 0
fi
echo "tmux is missing: install it (apt-get install -y tmux); the terminal tests need it" >&2
exit 1

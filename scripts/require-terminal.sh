#!/usr/bin/env bash
# Makes sure tmux, zsh and fish are installed: the tests that use qiflow the
# way a person does, at a terminal (Ctrl-C on `make demo`, the live summary,
# shell completion on Tab in bash, zsh and fish), run it in a real terminal
# under tmux. As root on Debian or Ubuntu it installs what is missing;
# otherwise it says what to install.
set -euo pipefail
missing=()
for tool in tmux zsh fish; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "${missing[*]} missing: installing from the distribution's packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
  exit 0
fi
echo "${missing[*]} missing: install them (apt-get install -y ${missing[*]}); the terminal tests need them" >&2
exit 1

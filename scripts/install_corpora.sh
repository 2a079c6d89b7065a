#!/usr/bin/env bash
# The real-world suite's offline corpora are Debian packages (README "Corpora"). Used by `make run`
# (before anything else) and by .ci/run: installs the missing ones where it can (root, or sudo
# without a password prompt); otherwise prints one line with the command to run and exits 1.
# Exit 0: every corpus package is installed. Nothing to do is silent.
set -uo pipefail
# MODGEN_CORPUS_PACKAGES overrides the list (tests use it to simulate a missing package).
read -ra PACKAGES <<< "${MODGEN_CORPUS_PACKAGES:-bible-kjv dict-gcide fortune-mod fortunes fortunes-de fortunes-es fortunes-it fortunes-ru}"

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

missing=()
for p in "${PACKAGES[@]}"; do installed "$p" || missing+=("$p"); done
[ ${#missing[@]} -eq 0 ] && exit 0

if command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then SUDO=(env)
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO=(sudo -n)
  else SUDO=()
  fi
  if [ ${#SUDO[@]} -gt 0 ]; then
    echo "installing the corpus packages: ${missing[*]}" >&2
    if "${SUDO[@]}" DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null \
       && "${SUDO[@]}" DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; then
      still=(); for p in "${missing[@]}"; do installed "$p" || still+=("$p"); done
      [ ${#still[@]} -eq 0 ] && exit 0
      missing=("${still[@]}")
    fi
  fi
fi
echo "modgen-bench: error: the real-world corpora are not installed (${missing[*]}); run:" \
     "sudo apt-get install -y ${missing[*]}   (or run make run as root)" >&2
exit 1

#!/usr/bin/env bash
# Install the Debian packages that optional tests need, when we are root and they are missing.
# Never fails the build: tests that need a missing tool skip with a clear reason.
set -u
want=()
for pkg in "$@"; do want+=("$pkg"); done
[ ${#want[@]} -eq 0 ] && exit 0
missing=()
for pkg in "${want[@]}"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "system-deps: not root or no apt-get; tests needing ${missing[*]} will be skipped" >&2
  exit 0
fi
echo "system-deps: installing ${missing[*]}" >&2
(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}") >/dev/null 2>&1 \
  || echo "system-deps: could not install ${missing[*]}; the tests that need them will be skipped" >&2
exit 0

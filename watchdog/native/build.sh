#!/bin/sh
# Builds fnbus-spawner, the helper that forks function processes for the watchdog's fork,
# streaming and serializing modes. Without a C compiler the watchdog still works: it falls back
# to node's child_process, which forks from the whole Node heap and is about half as fast.
set -u
here=$(dirname "$0")
out="$here/../../dist/watchdog/fnbus-spawner"
cc=${CC:-cc}
if ! command -v "$cc" >/dev/null 2>&1; then
  echo "fnbus: no C compiler ($cc); the watchdog will fork with node's child_process" >&2
  exit 0
fi
mkdir -p "$(dirname "$out")"
if ! "$cc" -O2 -Wall -Wextra -o "$out" "$here/fnbus-spawner.c"; then
  echo "fnbus: fnbus-spawner did not compile; the watchdog will fork with node's child_process" >&2
  rm -f "$out"
fi
exit 0

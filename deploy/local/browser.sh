#!/usr/bin/env bash
# Debian's chromium for the dashboard tests (driven headless by Playwright, never downloaded by it).
# Idempotent: installs only when no chromium is on the PATH. KOALR_CHROMIUM names another binary.
set -euo pipefail

say() { printf '[browser] %s\n' "$*" >&2; }
die() { printf '[browser] error: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    die "need root for: $* (install sudo or run as root)"; fi
}

if [ -n "${KOALR_CHROMIUM:-}" ]; then
  [ -x "$KOALR_CHROMIUM" ] || die "KOALR_CHROMIUM=$KOALR_CHROMIUM is not an executable"
  exit 0
fi
command -v chromium >/dev/null && exit 0
say "installing chromium from Debian's packages"
as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >&2
command -v chromium >/dev/null || die "chromium did not install"

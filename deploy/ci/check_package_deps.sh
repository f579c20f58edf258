#!/usr/bin/env bash
# Sync each workspace member alone into its own environment and import all its modules, so an
# import that a package does not declare in its own pyproject.toml fails (one shared venv hides it).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
UV="${UV:-$ROOT/.tools/venv/bin/uv}"
cd "$ROOT"
status=0
for pyproject in libs/*/pyproject.toml services/*/pyproject.toml; do
  dir="$(dirname "$pyproject")"
  package="$(sed -n 's/^name = "\(.*\)"/\1/p' "$pyproject" | head -n 1)"
  module="${package//-/_}"
  env_dir="$ROOT/.tools/depcheck/$package"
  UV_PROJECT_ENVIRONMENT="$env_dir" "$UV" sync --quiet --locked --no-dev --package "$package"
  if "$env_dir/bin/python" "$ROOT/deploy/ci/import_all.py" "$module"; then
    echo "[deps] $package: every module imports with only its declared dependencies"
  else
    echo "[deps] $package ($dir): imports something it does not declare" >&2
    status=1
  fi
done
exit $status

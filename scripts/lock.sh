#!/bin/sh
# Regenerate requirements.lock, the exact versions `make setup` installs and CI tests, from the
# ranges in pyproject.toml. uv keeps every version already in the lock file unless told to move
# it: `sh scripts/lock.sh --upgrade-package NAME` (or --upgrade for all), then run `make test`.
set -eu
cd "$(dirname "$0")/.."
command -v uv >/dev/null || { echo "uv is needed: pip install uv" >&2; exit 1; }
exec uv pip compile pyproject.toml --extra gui --extra train --extra dev --python-version 3.11 \
    --no-header --no-annotate -o requirements.lock "$@"

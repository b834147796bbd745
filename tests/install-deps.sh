#!/usr/bin/env bash
# Installs, with apt-get, the system programs the test suite starts as real servers on free
# loopback ports, when they are missing. Python packages come from `uv run` (pyproject.toml).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
# initdb/pg_ctl: the tests run their own PostgreSQL cluster (Debian keeps them off PATH)
if ! command -v initdb >/dev/null && ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
    need+=(postgresql)
fi
# the console's browser tests (Playwright drives this Chromium; `playwright install` cannot download)
command -v chromium >/dev/null || need+=(chromium)
if ((${#need[@]})); then
    apt-get update -qq
    apt-get install -y -qq "${need[@]}"
fi

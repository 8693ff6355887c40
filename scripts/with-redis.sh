#!/usr/bin/env bash
# Runs a command with REDIS_URL pointing at a real Redis: the given one, or a
# throwaway redis-server on a free port that is stopped afterwards.
set -euo pipefail
if [ -n "${REDIS_URL:-}" ]; then
  exec "$@"
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
dir=$(mktemp -d)
redis-server --port "$port" --bind 127.0.0.1 -::1 --save "" --appendonly no \
  --dir "$dir" --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
cleanup() { kill "$(cat "$dir/redis.pid" 2>/dev/null)" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
export REDIS_URL="redis://127.0.0.1:$port/0"
echo "using throwaway Redis at $REDIS_URL"
"$@"

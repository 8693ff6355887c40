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
# The server is waited for before its folder goes (it may still be writing its log), and
# the clean-up never turns a passing run into a failing one.
cleanup() {
  local pid
  pid=$(cat "$dir/redis.pid" 2>/dev/null || true)
  if [ -n "$pid" ]; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -rf "$dir" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
export REDIS_URL="redis://127.0.0.1:$port/0"
echo "using throwaway Redis at $REDIS_URL"
"$@"

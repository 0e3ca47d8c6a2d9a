#!/usr/bin/env bash
# Runs a command with a throwaway PostgreSQL: initdb in a temporary directory, the server on
# 127.0.0.1 (a free port) as a non-root user, PORTCULLIS_TEST_POSTGRES set to its DSN for the
# command, and the server stopped and its directory removed at the end, whatever happens.
#
#   bash test/pg.sh go test -race ./internal/store/postgres/
#
# With PORTCULLIS_TEST_POSTGRES already set, the command runs against that database. Without
# PostgreSQL's server programs (test/e2e/deps.sh installs them from Debian's packages when it
# runs as root) the command runs without it and the PostgreSQL tests skip, except under CI
# (CI set), where that is an error.
set -euo pipefail
if [ $# -eq 0 ]; then echo "usage: test/pg.sh COMMAND [ARGS...]" >&2; exit 2; fi
if [ -n "${PORTCULLIS_TEST_POSTGRES:-}" ]; then exec "$@"; fi

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
  if [ -n "${CI:-}" ]; then
    echo "test/pg.sh: no PostgreSQL server under /usr/lib/postgresql/*/bin (run test/e2e/deps.sh as root)" >&2
    exit 1
  fi
  echo "test/pg.sh: no PostgreSQL server programs: the PostgreSQL tests will skip" >&2
  exec "$@"
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/portcullis-pg.XXXXXX")
chmod 755 "$dir"
as=()
if [ "$(id -u)" = 0 ]; then
  # initdb refuses to run as root: the server runs as the postgres user that Debian's
  # package creates (or nobody).
  user=postgres
  id -u "$user" >/dev/null 2>&1 || user=nobody
  chown "$user" "$dir"
  as=(runuser -u "$user" --)
fi
data=$dir/data
log=$dir/server.log
stop() {
  "${as[@]}" "$bin/pg_ctl" -D "$data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap stop EXIT
trap 'exit 130' INT TERM
"${as[@]}" "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
  "${as[@]}" "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 ||
  { cat "$dir/initdb.log" >&2; exit 1; }

# A free port: try a few at random (another test run may hold one).
port=
for _ in 1 2 3 4 5 6 7 8 9 10; do
  p=$((20000 + RANDOM % 30000))
  # Throwaway data: no fsync. Loopback only; the socket in the temporary directory.
  if "${as[@]}" "$bin/pg_ctl" -D "$data" -l "$log" -w -t 60 \
    -o "-h 127.0.0.1 -p $p -k $dir -c fsync=off -c full_page_writes=off -c max_connections=300" start >/dev/null 2>&1; then
    port=$p
    break
  fi
done
if [ -z "$port" ]; then
  echo "test/pg.sh: PostgreSQL did not start:" >&2
  cat "$log" >&2 || true
  exit 1
fi
export PORTCULLIS_TEST_POSTGRES="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
echo "test/pg.sh: $("$bin/postgres" --version) on 127.0.0.1:$port (PORTCULLIS_TEST_POSTGRES)" >&2
set +e
"$@"
rc=$?
set -e
exit $rc

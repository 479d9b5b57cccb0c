#!/usr/bin/env bash
# The no-account demo, from a fresh clone: builds what it needs, starts the test MCP server
# (mcp-test-upstream: HTTPS with its own CA, a random bearer token) and mcpproxyd in front of
# it (config/demo.toml), waits for each to say it is ready, calls a tool through the proxy,
# shows how to try more, and stops both on Ctrl-C or exit.
#
#   scripts/demo.sh            run until Ctrl-C (also: make demo)
#   scripts/demo.sh --once     stop after the tool call and the status (tests, scripts)
#
# Environment: DEMO_PORT (proxy port, default 8088; 0 picks a free one), DEMO_BIN_DIR (use the
# binaries there instead of building), DEMO_WAIT (seconds each start may take, default 120).
#
# Every run gets a fresh directory (mktemp) for the server's CA and token and the daemon's
# admin socket and state, removed at the end: a token from an earlier run cannot be used.
# The daemon starts only after the server has printed its `Listening:` line, which it does
# once its CA and token are written.
set -euo pipefail
cd "$(dirname "$0")/.."

once=false
case "${1:-}" in
  --once) once=true ;;
  "") ;;
  -h | --help) sed -n '2,17s/^# \{0,1\}//p' "$0"; exit 0 ;;
  *) echo "usage: $0 [--once]" >&2; exit 64 ;;
esac
port="${DEMO_PORT:-8088}"
wait_s="${DEMO_WAIT:-120}"

command -v curl >/dev/null || { echo "demo: curl is missing (apt-get install curl)" >&2; exit 1; }
if [ -n "${DEMO_BIN_DIR:-}" ]; then
  bin="$DEMO_BIN_DIR"
else
  echo "== cargo build (the daemon, mcpproxyctl and the test MCP server; quick once built)"
  cargo build --bin mcpproxyd --bin mcpproxyctl --bin mcp-test-upstream
  bin="${CARGO_TARGET_DIR:-target}/debug"
fi
for b in mcpproxyd mcpproxyctl mcp-test-upstream; do
  [ -x "$bin/$b" ] || { echo "demo: $bin/$b is missing" >&2; exit 1; }
done

run="$(mktemp -d "${TMPDIR:-/tmp}/mcpproxyd-demo.XXXXXX")"
up_pid="" d_pid=""
stop() {
  trap - EXIT INT TERM HUP
  for pid in $d_pid $up_pid; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in $d_pid $up_pid; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$run"
  echo "demo: stopped the daemon and the test MCP server"
}
trap stop EXIT
trap 'exit 130' INT TERM
trap 'exit 129' HUP # the terminal closed: clean up all the same

fail() {
  echo "demo: $*" >&2
  for log in "$run"/*.log; do
    [ -s "$log" ] && { echo "--- $log" >&2; tail -n 20 "$log" >&2; }
  done
  exit 1
}

# Reads lines from fd $1 (copying them to file $3) until one matches the regex $2, at most
# $wait_s seconds: the line is in $line. EOF (the process exited) or the time limit fails.
deadline=0
await_line() {
  local fd=$1 pattern=$2 copy=$3
  while ((SECONDS < deadline)); do
    IFS= read -r -t $((deadline - SECONDS)) -u "$fd" line || return 1
    printf '%s\n' "$line" >>"$copy"
    [[ $line =~ $pattern ]] && return 0
  done
  return 1
}

# Nothing from a service manager or an outer test may reach the two processes.
clean_env=(env -u NOTIFY_SOCKET -u LISTEN_FDS -u LISTEN_PID -u LISTEN_FDNAMES
  -u INVOCATION_ID -u JOURNAL_STREAM -u WATCHDOG_USEC -u MCPPROXYD_SOCKET)

echo "== starting the test MCP server (its CA and token go to $run/upstream)"
exec {up_out}< <(exec "${clean_env[@]}" "$bin/mcp-test-upstream" --port 0 \
  --state-dir "$run/upstream" 2>"$run/upstream.log")
up_pid=$!
deadline=$((SECONDS + wait_s))
await_line "$up_out" '^Listening: ' "$run/upstream.out" ||
  fail "the test MCP server did not start"
upstream_url="${line#Listening: }"
echo "   $line"

sed "s|/tmp/mcpproxyd-demo|$run/upstream|g" config/demo.toml >"$run/demo.toml"
echo "== starting mcpproxyd --config config/demo.toml (upstream $upstream_url, port $port)"
exec {d_out}< <(exec "${clean_env[@]}" RUNTIME_DIRECTORY="$run" STATE_DIRECTORY="$run/state" \
  "$bin/mcpproxyd" --config "$run/demo.toml" --port "$port" --upstream "$upstream_url" \
  2>"$run/mcpproxyd.log")
d_pid=$!
deadline=$((SECONDS + wait_s))
await_line "$d_out" '^Listen: ' "$run/mcpproxyd.out" ||
  fail "mcpproxyd did not start (port $port in use? DEMO_PORT=0 picks a free one)"
addr="${line#Listen: }"
# The rest of the banner, up to its closing empty line.
while await_line "$d_out" '^$' "$run/mcpproxyd.out"; do break; done
sed 's/^/   /' "$run/mcpproxyd.out"
ctl=("$bin/mcpproxyctl" --socket "$run/admin.sock")

echo "== a tool call through the proxy (the client sends no token; the proxy adds it)"
body='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello through mcpproxyd"}}}'
echo "   curl -X POST http://$addr/demo/mcp-demo -d '$body'"
answer="$(curl -sS --max-time 30 -X POST "http://$addr/demo/mcp-demo" \
  -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \
  -d "$body")" || fail "the tool call failed"
printf '%s\n' "$answer" | sed 's/^/   /'
[[ $answer == *'hello through mcpproxyd'* ]] || fail "the tool's answer is not the echo"

echo "== mcpproxyctl status"
"${ctl[@]}" status | sed 's/^/   /' || fail "mcpproxyctl status failed"

cat <<TRY

Try it with a real MCP client:
  Streamable HTTP  http://$addr/accounts/1001/custom/tools/id/TOOLS01/mcp
  legacy SSE       http://$addr/accounts/1001/custom/tools/id/TOOLS01/sse
  - MCP Inspector (Node):  npx @modelcontextprotocol/inspector --cli \\
        http://$addr/accounts/1001/custom/tools/id/TOOLS01/mcp --transport http --method tools/list
    (--transport sse with the .../sse URL; without --cli it opens the Inspector's web UI)
  - Python MCP SDK (after make test-deps):  target/python-venv/bin/python \\
        tests/python/mcp_client_check.py --transport streamable \\
        --url http://$addr/accounts/1001/custom/tools/id/TOOLS01/mcp
  - The daemon's admin socket:  ${ctl[*]} status   (also: servers, metrics, acl check PATH)
  - Its log:  $run/mcpproxyd.log
TRY

if $once; then
  exit 0
fi
echo "Running. Press Ctrl-C to stop both."
# Ctrl-C (or SIGTERM) ends this wait at once and runs the trap, which stops both.
status=0
wait "$d_pid" || status=$?
d_pid=""
fail "mcpproxyd exited on its own (status $status)"

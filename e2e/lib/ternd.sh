# Sourced by the scripts that need a running ternd on loopback (the demo, the benchmarks).
#   start_ternd BUILD_DIR WORK_DIR [ternd flags...]
# makes WORK_DIR/certs with `ternctl webhook-cert`, starts ternd on 127.0.0.1 with a free port,
# waits until it listens and sets TERND_PID and TERND_PORT. stop_ternd ends it by its PID.
TERND_PID=""
TERND_PORT=""

start_ternd() {
  local build=$1 work=$2
  shift 2
  "$build/webhook/ternctl" webhook-cert --service ternd --namespace tern-system --out "$work/certs" 2>/dev/null
  rm -f "$work/port"
  "$build/control-plane/ternd" --listen=127.0.0.1:0 --port-file="$work/port" \
    --tls-cert="$work/certs/tls.crt" --tls-key="$work/certs/tls.key" "$@" 2> "$work/ternd.log" &
  TERND_PID=$!
  for _ in $(seq 1 100); do [[ -s "$work/port" ]] && break; sleep 0.05; done
  if [[ ! -s "$work/port" ]]; then
    echo "ternd did not start:" >&2
    cat "$work/ternd.log" >&2
    return 1
  fi
  TERND_PORT=$(cat "$work/port")
}

stop_ternd() {
  if [[ -n "$TERND_PID" ]]; then
    kill "$TERND_PID" 2>/dev/null || true
    wait "$TERND_PID" 2>/dev/null || true
    TERND_PID=""
  fi
}

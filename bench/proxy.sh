#!/usr/bin/env bash
# tern-proxy against HAProxy and nginx, interleaved in one run: HTTP/1.1 keep-alive with wrk, and
# HTTP/2 (prior knowledge, 10 streams per connection) with h2load, each proxy turning HTTP/2 into
# HTTP/1.1 keep-alive toward the backend.
# Everything runs inside one network namespace made here ("the pod"): an nginx backend on
# 127.0.0.1:18080; HAProxy (:18081) and nginx (:18082) proxying to it directly; tern-proxy as
# the sidecar it is, uid 1337 behind tern-init's capture, reached by calling the service's
# cluster IP 10.96.0.20:8080 (so tern also pays the NAT redirect the others do not). One worker
# each, keep-alive upstreams. Prints requests/s, p50/p99 latency, CPU seconds per 10,000
# requests and peak RSS, and tern/HAProxy ratios. A last row, "haproxy-nat", reaches the same
# HAProxy through an nftables redirect like tern's capture (10.96.0.30:8080 -> :18081), to tell
# what the capture costs from what tern-proxy costs. tern-proxy runs with a 1,000-endpoint snapshot
# (the bench service plus 100 services of 10 endpoints), so its idle RSS is the issue's measure.
# A "tern-seed" row calls a second service (10.96.0.21:8080, the same nginx backend as v1 on
# 127.0.0.1 and v2 on 127.0.0.2) under the seed's VirtualService and DestinationRule verbatim
# (90/10 split, retries, timeout, LEAST_CONN, connection pool limits, outlier detection): next
# to "tern" (a plain route) it prices the resilience features.
# A last table holds latency at a fixed 12,000 requests/s (RATE=...) over HTTP/1.1, below every
# proxy's knee, with each proxy's CPU per request at that equal load.
# With INSTRUCTIONS=1 it ends with user-space instructions per request for tern-proxy and HAProxy
# under callgrind: a measure this machine's run-to-run noise does not move.
# With TERN_BEFORE=path (an earlier tern-proxy build), every tern row is measured for that binary
# too, in the same run, as "<row>-before": the two take turns behind the one capture (restarted
# between rows), and a last table gives after/before CPU per request (and instructions) per row.
#   [INSTRUCTIONS=1] [RATE=N] [TERN_PROXY=path] [TERN_BEFORE=path] bench/proxy.sh [DURATION_S] [ROUNDS]
#   (defaults 10, 2; connections 16 and 64)
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
rounds=${2:-2}
./scripts/install-deps.sh
for p in haproxy nginx wrk; do command -v "$p" >/dev/null || { apt-get install -y -qq "$p" >/dev/null; }; done
cmake --preset release >/dev/null
cmake --build --preset release >/dev/null
build=$PWD/build/release
# TERN_PROXY=path: another tern-proxy binary (an earlier build, to compare with) in place of this tree's.
tern_proxy=${TERN_PROXY:-$build/proxy/tern-proxy}
ns=tern-bench-$$
work=$(mktemp -d /tmp/tern-proxy-bench.XXXXXX)
chmod 755 "$work"
pids=()
source bench/pod.sh
trap pod_cleanup EXIT INT TERM
pod_create

cat > "$work/backend.conf" <<CONF
worker_processes 1; daemon off; pid $work/backend.pid; error_log stderr error;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:18080; listen 127.0.0.2:18080; location / { return 200 "hello from the backend\n"; } } }
CONF
cat > "$work/nginx-proxy.conf" <<CONF
worker_processes 1; daemon off; pid $work/nginx-proxy.pid; error_log stderr error;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  upstream backend { server 127.0.0.1:18080; keepalive 128; }
  server { listen 127.0.0.1:18082; listen 127.0.0.1:18092 http2;
    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
CONF
cat > "$work/haproxy.cfg" <<CONF
global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  http-reuse always
frontend fe
  bind 127.0.0.1:18081
  bind 127.0.0.1:18091 proto h2
  default_backend be
backend be
  server s1 127.0.0.1:18080
CONF
pod_snapshot bench "- hostname: guarded.default.svc.cluster.local
  clusterIPs: [10.96.0.21]
  ports: [{name: http, port: 8080}]
" "- {service: guarded.default.svc.cluster.local, address: 127.0.0.1, ports: {http: 18080}, labels: {version: v1}}
- {service: guarded.default.svc.cluster.local, address: 127.0.0.2, ports: {http: 18080}, labels: {version: v2}}" > "$work/snapshot.yaml"
# 999 more endpoints: 100 services of 10 (one of 9), as a mid-size mesh's sidecar would see;
# the services go in before "endpoints:", their endpoints after the list's end, in one pass.
awk '
  /^endpoints:/ {
    for (i = 0; i < 100; i++)
      printf "- {hostname: svc-%d.default.svc.cluster.local, clusterIPs: [10.97.%d.%d], ports: [{name: http, port: 8080}]}\n", i, int(i / 250), i % 250 + 1
  }
  { print }
  END {
    for (i = 0; i < 100; i++)
      for (j = 0; j < 10 && !(i == 99 && j == 9); j++)
        printf "- {service: svc-%d.default.svc.cluster.local, address: 10.%d.%d.%d, ports: {http: 8080}, labels: {app: svc-%d, version: v%d}}\n", i, 100 + int(i / 100), i % 100, j + 1, i, j % 2
  }' "$work/snapshot.yaml" >"$work/snapshot.tmp" && mv "$work/snapshot.tmp" "$work/snapshot.yaml"

# The seed's VirtualService and DestinationRule, for the service "guarded".
sed -n '/^resources:/,$p' core/config/testdata/seed.yaml | sed 's/product-service/guarded/g' >>"$work/snapshot.yaml"

run nginx -c "$work/backend.conf" & pids+=($!)
run nginx -c "$work/nginx-proxy.conf" & pids+=($!)
run haproxy -f "$work/haproxy.cfg" -db & pids+=($!)
run "$build/init/tern-init" -p 15001 -z 15006 -u 1337 -g 1337 -m REDIRECT -i '*' -x '' -b '*' -d 15090,15021,15020 2>/dev/null
tern_before=${TERN_BEFORE:-}
# Starts tern-proxy binary $1 as the sidecar (uid 1337, one worker) and waits until it answers.
start_tern() {
  run setpriv --reuid 1337 --regid 1337 --clear-groups "$1" --config "$work/snapshot.yaml" \
    --concurrency 1 --log-level error & pids+=($!)
  running_tern=$1
  for _ in $(seq 50); do
    sleep 0.1
    run curl -s -o /dev/null --max-time 1 http://10.96.0.20:8080/ && break
  done
  tern_pid=$(pgrep -n -f "$1 --config $work" || true)
}
# Makes binary $1 the running tern-proxy (the other one stopped first: they share the capture's ports).
use_tern() {
  [[ "$running_tern" == "$1" ]] && return
  kill "$tern_pid"
  for _ in $(seq 50); do kill -0 "$tern_pid" 2>/dev/null || break; sleep 0.1; done
  start_tern "$1"
}
# The binary a row's target measures: "...-before" rows the earlier build's.
binary_of() { [[ "$1" == *-before ]] && echo "$tern_before" || echo "$tern_proxy"; }
start_tern "$tern_proxy"
# HAProxy behind a redirect of its own, evaluated before tern's capture (priority -150 < -100).
run nft -f - <<'NFT'
table ip bench_nat {
  chain output {
    type nat hook output priority -150; policy accept;
    ip daddr 10.96.0.30 tcp dport 8080 redirect to :18081
  }
}
NFT
sleep 1

# pid of each measured process (one worker each)
haproxy_pid=$(pgrep -n -f "haproxy -f $work/haproxy.cfg" || true)
nginx_pid=$(pgrep -n -P "$(cat "$work/nginx-proxy.pid")" || true)
if [[ -z "$tern_pid" || -z "$haproxy_pid" || -z "$nginx_pid" ]]; then
  echo "bench/proxy.sh: a proxy did not start (tern-proxy '$tern_pid', haproxy '$haproxy_pid', nginx '$nginx_pid')" >&2
  exit 1
fi
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kb() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }  # peak
rss_now_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
hz=$(getconf CLK_TCK)
# CPU seconds per 10,000 requests: cpu_per_10k TICKS REQUESTS
cpu_per_10k() { awk -v t="$1" -v hz="$hz" -v n="$2" 'BEGIN { if (n > 0) printf "%.3f", t / hz / n * 10000; else print "n/a" }'; }
# "p50 p99 p99.9" in ms from an h2load --log-file (its third column: microseconds per request).
log_percentiles() {
  awk '{print $3 / 1000}' "$1" | sort -g |
    awk '{a[NR]=$1} END {printf "%.3f %.3f %.3f", a[int(NR*0.5)], a[int(NR*0.99)], a[int(NR*0.999)]}'
}

declare -A url=([direct]=http://127.0.0.1:18080/ [tern]=http://10.96.0.20:8080/ [haproxy]=http://127.0.0.1:18081/
                [nginx]=http://127.0.0.1:18082/ [haproxy-nat]=http://10.96.0.30:8080/ [tern-seed]=http://10.96.0.21:8080/
                [tern-before]=http://10.96.0.20:8080/ [tern-seed-before]=http://10.96.0.21:8080/)
declare -A pid=([direct]="" [haproxy]=$haproxy_pid [nginx]=$nginx_pid [haproxy-nat]=$haproxy_pid)
# The measured process of a row (for a tern row, once use_tern has started its binary).
pid_of() { if [[ "$1" == tern* ]]; then echo "$tern_pid"; else echo "${pid[$1]}"; fi; }
wrk_targets="direct tern haproxy nginx haproxy-nat tern-seed${tern_before:+ tern-before tern-seed-before}"
h2_targets="tern haproxy nginx${tern_before:+ tern-before}"
declare -A rps p50 p99 cpu
echo "idle RSS: tern-proxy $(rss_now_kb "$tern_pid") KB, HAProxy $(rss_now_kb "$haproxy_pid") KB, nginx worker $(rss_now_kb "$nginx_pid") KB"
h2_ok=$(run h2load -n1 -c1 http://10.96.0.20:8080/ 2>&1 | awk '/^status codes:/ {print $3}')
[[ "$h2_ok" == 1 ]] || { echo "bench/proxy.sh: tern-proxy did not answer an HTTP/2 request" >&2; exit 1; }
seed_ok=$(run h2load -n1 -c1 http://10.96.0.21:8080/ 2>&1 | awk '/^status codes:/ {print $3}')
[[ "$seed_ok" == 1 ]] || { echo "bench/proxy.sh: tern-proxy did not answer through the seed's routes" >&2; exit 1; }
echo "tern-proxy snapshot: $(grep -c "^- {service:" "$work/snapshot.yaml") endpoints, $(grep -c "hostname:" "$work/snapshot.yaml") services"
for conns in 16 64; do
  for round in $(seq "$rounds"); do
    for target in $wrk_targets; do
      use_tern "$(binary_of "$target")"
      p=$(pid_of "$target")
      before=$([ -n "$p" ] && cpu_ticks "$p" || echo 0)
      out=$(run wrk -t2 -c"$conns" -d"${duration}s" --latency "${url[$target]}")
      after=$([ -n "$p" ] && cpu_ticks "$p" || echo 0)
      reqs=$(awk '/requests in/ {print $1}' <<<"$out")
      r=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
      l50=$(awk '$1=="50%" {print $2}' <<<"$out")
      l99=$(awk '$1=="99%" {print $2}' <<<"$out")
      c=$(cpu_per_10k $((after - before)) "$reqs")
      key="$target/$conns"
      rps[$key]="${rps[$key]:-} $r"; p50[$key]="${p50[$key]:-} $l50"; p99[$key]="${p99[$key]:-} $l99"; cpu[$key]="${cpu[$key]:-} $c"
    done
  done
done

to_ms() { awk '{ v=$1; if (v ~ /us$/) { sub(/us/,"",v); v/=1000 } else if (v ~ /ms$/) { sub(/ms/,"",v) } else if (v ~ /s$/) { sub(/s/,"",v); v*=1000 } printf "%.3f", v }' <<<"$1"; }
median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
printf "\n%-17s %5s %12s %10s %10s %16s\n" target conns "requests/s" "p50 ms" "p99 ms" "CPU s/10k req"
for conns in 16 64; do
  for target in $wrk_targets; do
    key="$target/$conns"
    m50=$(for v in ${p50[$key]}; do to_ms "$v"; echo; done | tr '\n' ' ')
    m99=$(for v in ${p99[$key]}; do to_ms "$v"; echo; done | tr '\n' ' ')
    printf "%-17s %5s %12s %10s %10s %16s\n" "$target" "$conns" "$(median "${rps[$key]}")" "$(median "$m50")" "$(median "$m99")" "$(median "${cpu[$key]}")"
  done
  t=$(median "${rps[tern/$conns]}"); h=$(median "${rps[haproxy/$conns]}")
  t99=$(median "$(for v in ${p99[tern/$conns]}; do to_ms "$v"; echo; done | tr '\n' ' ')")
  h99=$(median "$(for v in ${p99[haproxy/$conns]}; do to_ms "$v"; echo; done | tr '\n' ' ')")
  awk -v t="$t" -v h="$h" -v t99="$t99" -v h99="$h99" -v c="$conns" \
    'BEGIN { printf "tern/HAProxy at %s connections: throughput %.2fx (goal >= 1.1), p99 %.2fx (goal <= 1.0)\n", c, t/h, t99/h99 }'
  n=$(median "${rps[haproxy-nat/$conns]}")
  n99=$(median "$(for v in ${p99[haproxy-nat/$conns]}; do to_ms "$v"; echo; done | tr '\n' ' ')")
  awk -v t="$t" -v n="$n" -v t99="$t99" -v n99="$n99" -v c="$conns" \
    'BEGIN { printf "tern/HAProxy both behind a redirect, %s connections: throughput %.2fx, p99 %.2fx\n", c, t/n, t99/n99 }'
  s=$(median "${rps[tern-seed/$conns]}")
  s99=$(median "$(for v in ${p99[tern-seed/$conns]}; do to_ms "$v"; echo; done | tr '\n' ' ')")
  awk -v t="$t" -v s="$s" -v t99="$t99" -v s99="$s99" -v c="$conns" \
    'BEGIN { printf "resilience cost, seed DestinationRule vs plain route, %s connections: throughput %.2fx, p99 %.2fx\n", c, s/t, s99/t99 }'
done

# HTTP/2: h2load, 16 connections x 10 streams, per-request times from its log file.
declare -A h2url=([tern]=http://10.96.0.20:8080/ [haproxy]=http://127.0.0.1:18091/ [nginx]=http://127.0.0.1:18092/
                  [tern-before]=http://10.96.0.20:8080/)
declare -A h2rps h2p50 h2p99 h2cpu
for round in $(seq "$rounds"); do
  for target in $h2_targets; do
    use_tern "$(binary_of "$target")"
    p=$(pid_of "$target")
    before=$(cpu_ticks "$p")
    rm -f "$work/h2.log"  # h2load appends to its log file
    out=$(run h2load -c16 -m10 -t2 -D "$duration" --log-file="$work/h2.log" "${h2url[$target]}" 2>&1)
    after=$(cpu_ticks "$p")
    r=$(awk '/^finished in/ {print $4}' <<<"$out")
    ok=$(awk '/^status codes:/ {print $3}' <<<"$out")
    read -r l50 l99 _ <<<"$(log_percentiles "$work/h2.log")"
    c=$(cpu_per_10k $((after - before)) "$ok")
    h2rps[$target]="${h2rps[$target]:-} $r"; h2cpu[$target]="${h2cpu[$target]:-} $c"
    h2p50[$target]="${h2p50[$target]:-} $l50"; h2p99[$target]="${h2p99[$target]:-} $l99"
  done
done
printf "\nHTTP/2 (h2load, 16 connections x 10 streams)\n%-11s %12s %10s %10s %16s\n" target "requests/s" "p50 ms" "p99 ms" "CPU s/10k req"
for target in $h2_targets; do
  printf "%-11s %12s %10s %10s %16s\n" "$target" "$(median "${h2rps[$target]}")" "$(median "${h2p50[$target]}")" \
    "$(median "${h2p99[$target]}")" "$(median "${h2cpu[$target]}")"
done
awk -v t="$(median "${h2rps[tern]}")" -v h="$(median "${h2rps[haproxy]}")" -v t99="$(median "${h2p99[tern]}")" \
  -v h99="$(median "${h2p99[haproxy]}")" 'BEGIN { printf "tern/HAProxy over HTTP/2: throughput %.2fx, p99 %.2fx\n", t/h, t99/h99 }'

# Latency at a fixed offered load, below every proxy's knee: h2load over HTTP/1.1, 16 connections
# sending $rate requests/s in all, each request's time from its log file. The wrk rows above are
# closed-loop at saturation, where latency mostly restates throughput; this is the latency a
# caller sees at a load the proxies all sustain (Envoy's benchmarking guidance: measure latency
# below the knee). h2load sends a request that falls due while its connection is busy once the
# connection is free and times it from then, so these are service times: a stall delays the
# requests queued behind it without showing in theirs (coordinated omission). The achieved rate
# is printed next to them; below the offered one, the proxy could not keep up and the latencies
# understate. CPU per 10k requests at an equal load compares the proxies' cost with the
# scheduler's placement mattering least.
rate=$(( ${RATE:-12000} / 16 * 16 ))  # an equal share per connection
declare -A frrps frp50 frp99 frp999 frcpu
for round in $(seq "$rounds"); do
  for target in $h2_targets; do
    use_tern "$(binary_of "$target")"
    p=$(pid_of "$target")
    before=$(cpu_ticks "$p")
    rm -f "$work/fr.log"
    out=$(run h2load --h1 -c16 -t2 --rps=$((rate / 16)) -D "$duration" --log-file="$work/fr.log" "${url[$target]}" 2>&1)
    after=$(cpu_ticks "$p")
    ok=$(awk '/^status codes:/ {print $3}' <<<"$out")
    frrps[$target]="${frrps[$target]:-} $(awk '/^finished in/ {print $4}' <<<"$out")"
    read -r l50 l99 l999 <<<"$(log_percentiles "$work/fr.log")"
    c=$(cpu_per_10k $((after - before)) "$ok")
    frp50[$target]="${frp50[$target]:-} $l50"; frp99[$target]="${frp99[$target]:-} $l99"
    frp999[$target]="${frp999[$target]:-} $l999"; frcpu[$target]="${frcpu[$target]:-} $c"
  done
done
printf "\nHTTP/1.1 at a fixed %s requests/s (h2load --h1 --rps, 16 connections)\n%-11s %12s %10s %10s %10s %16s\n" \
  "$rate" target "requests/s" "p50 ms" "p99 ms" "p99.9 ms" "CPU s/10k req"
for target in $h2_targets; do
  printf "%-11s %12s %10s %10s %10s %16s\n" "$target" "$(median "${frrps[$target]}")" "$(median "${frp50[$target]}")" \
    "$(median "${frp99[$target]}")" "$(median "${frp999[$target]}")" "$(median "${frcpu[$target]}")"
done
awk -v t="$(median "${frp99[tern]}")" -v h="$(median "${frp99[haproxy]}")" -v tc="$(median "${frcpu[tern]}")" \
  -v hc="$(median "${frcpu[haproxy]}")" 'BEGIN { printf "tern/HAProxy at a fixed rate: p99 %.2fx, CPU per request %.2fx\n", t/h, tc/hc }'
if [[ -n "$tern_before" ]]; then
  printf "\nafter/before (TERN_BEFORE=%s), CPU per request, median of %s rounds\n" "$tern_before" "$rounds"
  for conns in 16 64; do
    for target in tern tern-seed; do
      awk -v a="$(median "${cpu[$target/$conns]}")" -v b="$(median "${cpu[$target-before/$conns]}")" -v r="$target, HTTP/1.1, $conns connections" \
        'BEGIN { printf "  %-40s %.3f / %.3f = %.3fx\n", r, a, b, a/b }'
    done
  done
  awk -v a="$(median "${h2cpu[tern]}")" -v b="$(median "${h2cpu[tern-before]}")" \
    'BEGIN { printf "  %-40s %.3f / %.3f = %.3fx\n", "tern, HTTP/2", a, b, a/b }'
  awk -v a="$(median "${frcpu[tern]}")" -v b="$(median "${frcpu[tern-before]}")" \
    'BEGIN { printf "  %-40s %.3f / %.3f = %.3fx\n", "tern, HTTP/1.1 at a fixed rate", a, b, a/b }'
  use_tern "$tern_proxy"
fi
echo "peak RSS: tern-proxy $(rss_kb "$tern_pid") KB, HAProxy $(rss_kb "$haproxy_pid") KB, nginx worker $(rss_kb "$nginx_pid") KB"

# Instructions per request (INSTRUCTIONS=1; needs valgrind): a measure this machine's noise does
# not move. Each proxy is restarted under callgrind, once for a single request (its startup) and
# once for 8 s of wrk on 4 connections; the difference over the requests served is what one
# proxied request costs in user-space instructions.
if [[ "${INSTRUCTIONS:-0}" == 1 ]]; then
  command -v valgrind >/dev/null || apt-get install -y -qq valgrind >/dev/null
  chmod 777 "$work"
  kill "$tern_pid" "$haproxy_pid"
  running_tern=""
  sleep 1
  # Runs `name` under callgrind (`cmd...`), drives `url` with `client` (wrk: HTTP/1.1 keep-alive,
  # 4 connections; h2load: HTTP/2, 4 connections x 10 streams) for 8 s when `load` is "load", and
  # prints "<instructions> <requests>".
  callgrind_run() {
    local name=$1 url=$2 load=$3 client=$4; shift 4
    run "$@" & local starter=$!
    local p=""
    for _ in $(seq 50); do
      sleep 0.2
      p=$(pgrep -n -f "valgrind.*$work/cg.$name.$load" || true)
      [[ -n "$p" ]] && run curl -s -o /dev/null --max-time 1 "$url" && break
    done
    local n=1
    if [[ "$load" == load && "$client" == wrk ]]; then
      n=$(run wrk -t1 -c4 -d8s "$url" | awk '/requests in/ {print $1}')
      n=$((n + 1))  # and the readiness probe
    elif [[ "$load" == load ]]; then
      n=$(run h2load -c4 -m10 -D 8 "$url" 2>&1 | awk '/^status codes:/ {print $3}')
      n=$((n + 1))
    fi
    # TERM, not INT: a background job of a non-interactive shell starts with SIGINT ignored, and
    # HAProxy keeps it so (it never stopped on INT here). tern-proxy drains on TERM, with nothing
    # open, at once.
    kill -TERM "$p"
    for _ in $(seq 300); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done  # callgrind writes its file on exit
    kill -KILL "$p" 2>/dev/null || true
    wait "$starter" 2>/dev/null || true
    echo "$(awk '/^summary:/ {print $2}' "$work/cg.$name.$load") $n"
  }
  cg() { echo valgrind --tool=callgrind --callgrind-out-file="$work/cg.$1.$2" --log-file="$work/cg.$1.$2.log"; }
  # Rows: "<proxy> <route> <client>". tern's plain route and the seed's over HTTP/1.1, and the plain
  # route over HTTP/2; HAProxy's plain route over HTTP/1.1 (it has no seed).
  rows="tern/plain/wrk tern/seed/wrk tern/plain/h2load haproxy/plain/wrk"
  [[ -n "$tern_before" ]] && rows+=" tern-before/plain/wrk tern-before/seed/wrk tern-before/plain/h2load"
  declare -A per_request
  for row in $rows; do
    IFS=/ read -r name route client <<<"$row"
    key="$name.$route.$client"
    for load in idle load; do
      if [[ $name == tern* ]]; then
        url=http://10.96.0.20:8080/
        [[ $route == seed ]] && url=http://10.96.0.21:8080/
        result=$(callgrind_run "$key" "$url" $load $client setpriv --reuid 1337 --regid 1337 --clear-groups \
          $(cg "$key" $load) "$(binary_of $name)" --config "$work/snapshot.yaml" --concurrency 1 --log-level error)
      else
        result=$(callgrind_run "$key" http://127.0.0.1:18081/ $load $client $(cg "$key" $load) haproxy -f "$work/haproxy.cfg" -db)
      fi
      read -r ir n <<<"$result"
      eval "ir_$load=$ir n_$load=$n"
    done
    per_request[$key]=$(awk -v a="$ir_load" -v b="$ir_idle" -v n="$n_load" -v m="$n_idle" 'BEGIN { printf "%.0f", (a - b) / (n - m) }')
    echo "instructions per request: $name, $route route, $client: ${per_request[$key]} ($((n_load - n_idle)) requests)"
  done
  awk -v t="${per_request[tern.plain.wrk]}" -v h="${per_request[haproxy.plain.wrk]}" \
    'BEGIN { printf "tern/HAProxy instructions per request: %.2fx\n", t/h }'
  if [[ -n "$tern_before" ]]; then
    for rc in plain/wrk seed/wrk plain/h2load; do
      IFS=/ read -r route client <<<"$rc"
      awk -v a="${per_request[tern.$route.$client]}" -v b="${per_request[tern-before.$route.$client]}" -v r="$route route, $client" \
        'BEGIN { printf "after/before instructions per request, %s: %.3fx\n", r, a/b }'
    done
  fi
fi

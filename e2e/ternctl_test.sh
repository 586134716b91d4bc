#!/usr/bin/env bash
# e2e: `ternctl kube-inject` on a multi-document file of every workload kind, and its errors.
set -euo pipefail
build=${1:?usage: ternctl_test.sh BUILD_DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
ternctl="$build/webhook/ternctl"
work=$(mktemp -d /tmp/tern-ternctl.XXXXXX)
trap 'rm -rf "$work"' EXIT
fail=0
check() { if ! eval "$1"; then echo "FAILED: $2"; fail=1; fi; }

kinds="Pod Deployment StatefulSet DaemonSet ReplicaSet Job CronJob"
: > "$work/all.yaml"
for kind in $kinds; do
  case $kind in
    Pod) spec='spec: {containers: [{name: app, image: example/app:1}]}' ;;
    CronJob) spec='spec: {schedule: "* * * * *", jobTemplate: {spec: {template: {spec: {containers: [{name: app, image: example/app:1}]}}}}}' ;;
    *) spec='spec: {selector: {matchLabels: {app: x}}, template: {metadata: {labels: {app: x}}, spec: {containers: [{name: app, image: example/app:1}]}}}' ;;
  esac
  api=apps/v1; [[ $kind == Pod ]] && api=v1; [[ $kind == Job || $kind == CronJob ]] && api=batch/v1
  printf -- '---\napiVersion: %s\nkind: %s\nmetadata: {name: w-%s}\n%s\n' "$api" "$kind" "${kind,,}" "$spec" >> "$work/all.yaml"
done
printf -- '---\napiVersion: v1\nkind: Service\nmetadata: {name: passthrough}\nspec: {ports: [{port: 80}]}\n' >> "$work/all.yaml"

"$ternctl" kube-inject -f "$work/all.yaml" > "$work/out.yaml" 2> "$work/err.txt"
check '[[ $(grep -c "name: istio-proxy" "$work/out.yaml") == 7 ]]' "one sidecar per workload (7)"
check '[[ $(grep -c "^kind: Service" "$work/out.yaml") == 1 ]]' "the Service passes through"
check '[[ $(grep -c ": injected (" "$work/err.txt") == 7 ]]' "a report line per workload"
# Idempotent: injecting the output again changes nothing.
"$ternctl" kube-inject -f - < "$work/out.yaml" > "$work/again.yaml" 2>/dev/null
check 'cmp -s "$work/out.yaml" "$work/again.yaml"' "kube-inject twice is kube-inject once"
# Mesh config from a file: classic layout puts the proxy among containers.
printf 'injection: {nativeSidecars: false}\n' > "$work/mesh.yaml"
"$ternctl" kube-inject -f "$root/../shared/compat/istio-inject/hello.yaml" --mesh-config "$work/mesh.yaml" > "$work/classic.yaml" 2>/dev/null
check 'grep -q "restartPolicy: Always" "$work/classic.yaml"; [[ $? != 0 ]]' "classic layout has no native sidecar"
# Errors: a bad annotation names itself; bad YAML names the line; unreadable files name the path.
if "$ternctl" kube-inject -f "$root/webhook/testdata/bad-annotations.yaml" > /dev/null 2> "$work/e1"; then fail=1; echo "FAILED: bad annotations accepted"; fi
check 'grep -q "document 1 (Pod/bad).*invalid value \\\"70000\\\"" "$work/e1"' "bad annotation message"
printf 'a: [unclosed\n' > "$work/bad.yaml"
if "$ternctl" kube-inject -f "$work/bad.yaml" > /dev/null 2> "$work/e2"; then fail=1; echo "FAILED: bad YAML accepted"; fi
check 'grep -q "line 2" "$work/e2"' "bad YAML message names the line"
if "$ternctl" kube-inject -f "$work/none.yaml" > /dev/null 2> "$work/e3"; then fail=1; echo "FAILED: missing file accepted"; fi
check 'grep -q "none.yaml" "$work/e3"' "missing file message names the path"
# webhook-cert writes a CA and a serving certificate that openssl verifies.
"$ternctl" webhook-cert --service ternd --namespace tern-system --out "$work/certs" 2>/dev/null
check 'openssl verify -CAfile "$work/certs/ca.crt" "$work/certs/tls.crt" >/dev/null' "serving cert verifies against the CA"
check 'openssl x509 -in "$work/certs/tls.crt" -noout -ext subjectAltName | grep -q "ternd.tern-system.svc"' "SAN has the service name"
check '[[ $(stat -c %a "$work/certs/tls.key") == 600 ]]' "key is private"
if ((fail)); then exit 1; fi
echo "ternctl: all checks passed"

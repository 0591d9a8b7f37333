#!/usr/bin/env bash
# Makes a stack's secret files: the client and operator tokens, a CA and the stack's certificate,
# which every server of the stack serves and every client of it shows. Files that exist are
# kept (--force: made anew), so running it again changes nothing. Needs openssl.
#
#   scripts/secrets.sh compose [--name DNS-NAME ...] [--dir DIR] [--force]
#   scripts/secrets.sh k8s [--namespace NS ...] [--name DNS-NAME ...] [--dir DIR] [--force]
#
# compose: secrets/ as docker-compose.prod.yml mounts it (client_token, operator_token, tls_ca,
#   tls_cert, tls_key; the CA's key stays in ca.key, mounted nowhere). The processes run as uid
#   10001 and compose mounts the files as they are: run as root, the script gives the mounted
#   files to that user (chown 10001:10001, mode 0400); otherwise it says what to run.
# k8s: deploy/k8s/secrets/ for kustomize's secretGenerator (deploy/k8s/kustomization.yaml):
#   client_token, operator_token, ca.crt, tls.crt, tls.key (and ca.key, in no Secret). The
#   certificate also names SERVICE.NS.svc[.cluster.local] for clients in other namespaces: one
#   --namespace per stack that shares it (default trading-system).
#
# The certificate names the services as the monitor and clients dial them (rust-engine,
# python-engine, monitor, localhost) and 127.0.0.1 (health probes, a client on the host through
# the published port); --name adds an outside address of the monitor. Clients outside the stack
# trust the CA (client.tls_ca_file).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  echo "usage: scripts/secrets.sh compose|k8s [--namespace NS ...] [--name DNS-NAME ...]" \
    "[--dir DIR] [--force]" >&2
  exit 2
}
target=${1:-}
case "$target" in
  compose) dir=secrets ca=tls_ca cert=tls_cert key=tls_key ;;
  k8s) dir=deploy/k8s/secrets ca=ca.crt cert=tls.crt key=tls.key ;;
  *) usage ;;
esac
shift
namespaces=()
force=0
names=()
while [ $# -gt 0 ]; do
  case "$1" in
    --namespace) namespaces+=("$2"); shift 2 ;;
    --name) names+=("$2"); shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --force) force=1; shift ;;
    *) usage ;;
  esac
done
if [ "$target" = k8s ] && [ ${#namespaces[@]} -eq 0 ]; then
  namespaces=(trading-system)
fi
if [ "$target" = compose ] && [ ${#namespaces[@]} -ne 0 ]; then
  echo "secrets: --namespace is for k8s" >&2
  exit 2
fi
if ! command -v openssl >/dev/null 2>&1; then
  echo "secrets: openssl not found" >&2
  exit 1
fi
mkdir -p "$dir"
chmod 700 "$dir"
umask 077

fresh() { [ "$force" = 1 ] || [ ! -s "$dir/$1" ]; }

for token in client_token operator_token; do
  if fresh "$token"; then
    # One line, 256 random bits (the servers read the file's first line).
    openssl rand -hex 32 >"$dir/$token"
    echo "secrets: wrote $dir/$token"
  fi
done

if fresh "$ca" || fresh ca.key; then
  openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -keyout "$dir/ca.key" -out "$dir/$ca" -days 825 -subj "/CN=trading-system CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  echo "secrets: wrote $dir/$ca (its key: $dir/ca.key, mounted nowhere)"
  force=1 # a new CA: the certificate below must be signed by it
fi

if fresh "$cert" || fresh "$key"; then
  san="DNS:rust-engine,DNS:python-engine,DNS:monitor,DNS:localhost,IP:127.0.0.1"
  for namespace in ${namespaces[@]+"${namespaces[@]}"}; do
    for service in rust-engine python-engine monitor; do
      san+=",DNS:$service.$namespace.svc,DNS:$service.$namespace.svc.cluster.local"
    done
  done
  for name in ${names[@]+"${names[@]}"}; do
    san+=",DNS:$name"
  done
  ext=$(mktemp)
  trap 'rm -f "$ext"' EXIT
  printf '%s\n' \
    "basicConstraints=critical,CA:FALSE" \
    "keyUsage=critical,digitalSignature,keyEncipherment" \
    "extendedKeyUsage=serverAuth,clientAuth" \
    "subjectAltName=$san" >"$ext"
  openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -keyout "$dir/$key" -out "$dir/tls.csr" -subj "/CN=trading-system" 2>/dev/null
  openssl x509 -req -in "$dir/tls.csr" -CA "$dir/$ca" -CAkey "$dir/ca.key" \
    -CAcreateserial -out "$dir/$cert" -days 397 -extfile "$ext" 2>/dev/null
  rm -f "$dir/tls.csr" "$dir/ca.srl"
  echo "secrets: wrote $dir/$cert for $san"
fi

if [ "$target" = compose ]; then
  mounted=(client_token operator_token "$ca" "$cert" "$key")
  if [ "$(id -u)" = 0 ]; then
    for f in "${mounted[@]}"; do
      chown 10001:10001 "$dir/$f"
      chmod 0400 "$dir/$f"
    done
    echo "secrets: ${mounted[*]} in $dir belong to uid 10001 (the containers' user), mode 0400"
  else
    echo "secrets: the containers run as uid 10001: as root, run" \
      "chown 10001:10001 ${mounted[*]/#/$dir/} && chmod 0400 ${mounted[*]/#/$dir/}"
  fi
fi

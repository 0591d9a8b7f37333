#!/usr/bin/env bash
# Makes the files of the stack's Secrets (deploy/k8s/kustomization.yaml, secretGenerator) in
# deploy/k8s/secrets/ (kept out of git): the client and operator tokens, a CA and the stack's
# certificate, which every server of the stack serves and every client of it shows (the engines
# require it: mutual TLS). Files that exist are kept (--force: made anew), so running it again
# changes nothing. Needs openssl.
#
#   scripts/k8s-secrets.sh [--namespace NS ...] [--name DNS-NAME ...] [--dir DIR] [--force]
#
# The certificate names the Services as the monitor and clients dial them (rust-engine,
# python-engine, monitor, and SERVICE.NS.svc[.cluster.local] for clients in other namespaces:
# one --namespace per stack that shares the certificate, default trading-system), and
# 127.0.0.1 for the probes inside each pod; --name adds an outside address of the monitor.
# Clients outside the stack trust deploy/k8s/secrets/ca.crt (client.tls_ca_file).
set -euo pipefail
cd "$(dirname "$0")/.."

namespaces=()
dir=deploy/k8s/secrets
force=0
names=()
while [ $# -gt 0 ]; do
  case "$1" in
    --namespace) namespaces+=("$2"); shift 2 ;;
    --name) names+=("$2"); shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --force) force=1; shift ;;
    *)
      echo "usage: scripts/k8s-secrets.sh [--namespace NS ...] [--name DNS-NAME ...]" \
        "[--dir DIR] [--force]" >&2
      exit 2
      ;;
  esac
done
if [ ${#namespaces[@]} -eq 0 ]; then
  namespaces=(trading-system)
fi
if ! command -v openssl >/dev/null 2>&1; then
  echo "k8s-secrets: openssl not found" >&2
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
    echo "k8s-secrets: wrote $dir/$token"
  fi
done

if fresh ca.crt || fresh ca.key; then
  openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -keyout "$dir/ca.key" -out "$dir/ca.crt" -days 825 -subj "/CN=trading-system CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  echo "k8s-secrets: wrote $dir/ca.crt (its key: $dir/ca.key, not part of any Secret)"
  force=1 # a new CA: the certificate below must be signed by it
fi

if fresh tls.crt || fresh tls.key; then
  san="DNS:rust-engine,DNS:python-engine,DNS:monitor,DNS:localhost,IP:127.0.0.1"
  for namespace in "${namespaces[@]}"; do
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
    -keyout "$dir/tls.key" -out "$dir/tls.csr" -subj "/CN=trading-system" 2>/dev/null
  openssl x509 -req -in "$dir/tls.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
    -CAcreateserial -out "$dir/tls.crt" -days 397 -extfile "$ext" 2>/dev/null
  rm -f "$dir/tls.csr" "$dir/ca.srl"
  echo "k8s-secrets: wrote $dir/tls.crt for $san"
fi

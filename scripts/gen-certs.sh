#!/usr/bin/env bash
# Makes a development certificate authority and mutual-TLS certificates for kvfabric processes (openssl, EC P-256).
#
#   scripts/gen-certs.sh DIR SPEC...
#
# SPEC is ROLE:NAME[:NAMESPACE+NAMESPACE...], ROLE one of metaserver, node, client, etcd. Each SPEC gives
# DIR/ROLE-NAME.pem and DIR/ROLE-NAME-key.pem, signed by DIR/ca.pem (made on first use, kept after). The identity
# kvfabric checks is in the subject alternative names: URI kvfabric://ROLE/NAME, and for a certificate limited to
# namespaces one URI kvfabric://namespace/NS each (none: every namespace). Every certificate also names localhost,
# 127.0.0.1 and ::1, so a development cluster on loopback works; production certificates come from your own CA (see
# deploy/). ROLE etcd makes a certificate without a kvfabric identity, for etcd's server or a client of etcd (CN
# NAME); give etcd its own DIR, so its CA is not the one kvfabric processes trust.
#
#   scripts/gen-certs.sh certs metaserver:main node:node-a node:node-b client:ops
#   scripts/gen-certs.sh certs node:tenant-a-node:tenant-a
#   scripts/gen-certs.sh etcd-certs etcd:server etcd:metaserver
set -euo pipefail

if [[ $# -lt 2 ]]; then
  sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
dir=$1
shift
mkdir -p "$dir"
umask 077

if [[ ! -f "$dir/ca.pem" ]]; then
  openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -days 3650 \
    -subj "/CN=kvfabric development CA" -keyout "$dir/ca-key.pem" -out "$dir/ca.pem" 2>/dev/null
fi

name_re='^[A-Za-z0-9._-]{1,128}$'
for spec in "$@"; do
  IFS=: read -r role name namespaces extra <<<"$spec"
  case "$role" in metaserver | node | client | etcd) ;; *)
    echo "gen-certs: $spec: role must be metaserver, node, client or etcd" >&2
    exit 2
    ;;
  esac
  if [[ -n "${extra:-}" || ! "$name" =~ $name_re ]]; then
    echo "gen-certs: $spec: expected ROLE:NAME[:NS+NS...] with NAME of letters, digits, . _ -" >&2
    exit 2
  fi
  san="URI:kvfabric://$role/$name,DNS:localhost,IP:127.0.0.1,IP:::1"
  subject="/CN=$role $name"
  if [[ "$role" == etcd ]]; then
    san="DNS:localhost,IP:127.0.0.1,IP:::1"
    subject="/CN=$name"
  fi
  if [[ -n "${namespaces:-}" ]]; then
    IFS=+ read -r -a list <<<"$namespaces"
    for ns in "${list[@]}"; do
      if [[ ! "$ns" =~ $name_re ]]; then
        echo "gen-certs: $spec: namespace \"$ns\" must be letters, digits, . _ -" >&2
        exit 2
      fi
      san="$san,URI:kvfabric://namespace/$ns"
    done
  fi
  out="$dir/$role-$name"
  openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -subj "$subject" \
    -keyout "$out-key.pem" -out "$out.csr" 2>/dev/null
  openssl x509 -req -in "$out.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca-key.pem" -CAcreateserial -days 825 \
    -extfile <(printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=digitalSignature\n' "$san") \
    -out "$out.pem" 2>/dev/null
  rm -f "$out.csr"
done

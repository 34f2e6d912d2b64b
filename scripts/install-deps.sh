#!/usr/bin/env bash
# Installs the system packages Caravan's commands and tests need, when they are missing.
# Debian packages: prometheus (promtool), protobuf-compiler + libprotobuf-dev (protoc and the
# well-known .proto files), haproxy, wrk, rsyslog + rsyslog-elasticsearch (omelasticsearch), npm
# (the official JavaScript client's test), chromium (the web UI's browser test).
set -euo pipefail

missing=()
need() { # need COMMAND-OR-FILE PACKAGE...
    local probe=$1
    shift
    if [[ $probe == /* ]]; then
        [[ -e $probe ]] && return 0
    else
        command -v "$probe" >/dev/null 2>&1 && return 0
    fi
    missing+=("$@")
}

need promtool prometheus
need protoc protobuf-compiler
need /usr/include/google/protobuf/timestamp.proto libprotobuf-dev
need haproxy haproxy
need wrk wrk
need /usr/sbin/rsyslogd rsyslog
compgen -G '/usr/lib/*/rsyslog/omelasticsearch.so' >/dev/null || missing+=(rsyslog-elasticsearch)
need npm npm
need /usr/bin/chromium chromium
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)

if ((${#missing[@]} == 0)); then
    exit 0
fi

echo "installing missing system packages: ${missing[*]}" >&2
if [[ $(id -u) -eq 0 ]]; then
    sudo=()
elif command -v sudo >/dev/null 2>&1; then
    sudo=(sudo)
else
    echo "error: not root and no sudo; install these Debian packages: ${missing[*]}" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

#!/usr/bin/env bash
# Make sure podman serves the Docker API on a unix socket (molecule's docker driver and the
# community.docker.docker_api connection talk to it; there is no Docker engine here).
#
#   tests/molecule/podman_api.sh SOCKET PYTHON
#
# Idempotent: when the socket already answers a Docker API ping nothing is started. Otherwise
# `podman system service` is started in its own session (setsid) so that it outlives make,
# and we wait until it answers. Its log is SOCKET's directory/podman-service.log.
set -euo pipefail

SOCKET="${1:?usage: podman_api.sh SOCKET PYTHON}"
PYTHON="${2:?usage: podman_api.sh SOCKET PYTHON}"
LOG="$(dirname "${SOCKET}")/podman-service.log"

ping_api() {
  "${PYTHON}" - "${SOCKET}" <<'PY' >/dev/null 2>&1
import sys
import docker
docker.DockerClient(base_url="unix://" + sys.argv[1], timeout=5).ping()
PY
}

if ping_api; then
  echo "podman: Docker API answers on unix://${SOCKET}"
  exit 0
fi

command -v podman >/dev/null || { echo "podman: not installed (run make deps)" >&2; exit 1; }
mkdir -p "$(dirname "${SOCKET}")"
# A socket file left by a service that died would make the new one fail to bind.
[ -S "${SOCKET}" ] && rm -f "${SOCKET}"
echo "podman: starting 'podman system service' on unix://${SOCKET} (log: ${LOG})"
setsid podman system service --time=0 "unix://${SOCKET}" </dev/null >>"${LOG}" 2>&1 &
service_pid=$!
for _ in $(seq 1 60); do
  if ping_api; then
    echo "podman: Docker API answers on unix://${SOCKET} (pid ${service_pid})"
    exit 0
  fi
  if ! kill -0 "${service_pid}" 2>/dev/null; then
    echo "podman: the API service exited; last lines of ${LOG}:" >&2
    tail -n 20 "${LOG}" >&2
    exit 1
  fi
  sleep 0.5
done
echo "podman: the API service does not answer on unix://${SOCKET} after 30 s; see ${LOG}" >&2
exit 1

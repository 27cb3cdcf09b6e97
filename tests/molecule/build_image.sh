#!/usr/bin/env bash
# Build the molecule base image locally: debootstrap (minbase) -> podman import -> Containerfile.
#
#   tests/molecule/build_image.sh IMAGE
#
# Skipped when IMAGE exists and was built from the current Containerfile (the image carries
# the Containerfile's SHA-256 as a label, so editing it rebuilds). No registry is needed.
set -euo pipefail

IMAGE="${1:?usage: build_image.sh IMAGE}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CONTAINERFILE="${HERE}/Containerfile"
BASE="localhost/dbdr-debian-base:bookworm"
SUITE="bookworm"
MIRROR="${DEBOOTSTRAP_MIRROR:-http://deb.debian.org/debian}"
LABEL="dbdr.containerfile.sha256"

digest="$(sha256sum "${CONTAINERFILE}" | cut -d' ' -f1)"
if podman image exists "${IMAGE}"; then
  have="$(podman image inspect --format "{{ index .Labels \"${LABEL}\" }}" "${IMAGE}" 2>/dev/null || true)"
  if [ "${have}" = "${digest}" ]; then
    echo "image: ${IMAGE} exists (Containerfile ${digest:0:12})"
    exit 0
  fi
  echo "image: ${IMAGE} was built from another Containerfile (${have:0:12}); rebuilding"
fi

start=${SECONDS}
if ! podman image exists "${BASE}"; then
  rootfs="$(mktemp -d /var/tmp/dbdr-debootstrap.XXXXXX)"
  trap 'rm -rf "${rootfs}"' EXIT
  echo "image: debootstrap --variant=minbase ${SUITE} ${MIRROR}"
  debootstrap --variant=minbase "${SUITE}" "${rootfs}" "${MIRROR}" >"${rootfs}.log" 2>&1 || {
    tail -n 30 "${rootfs}.log" >&2; rm -f "${rootfs}.log"; exit 1; }
  rm -f "${rootfs}.log"
  # Nothing of the build host may leak into the image.
  rm -rf "${rootfs:?}/var/cache/apt/archives/"*.deb "${rootfs:?}/var/lib/apt/lists/"*
  tar -C "${rootfs}" --numeric-owner -c . | podman import - "${BASE}" >/dev/null
  rm -rf "${rootfs}"
  trap - EXIT
  echo "image: imported ${BASE} ($((SECONDS - start)) s)"
fi

podman build --pull=never --build-arg "BASE=${BASE}" --label "${LABEL}=${digest}" \
  -t "${IMAGE}" -f "${CONTAINERFILE}" "${HERE}"
echo "image: built ${IMAGE} in $((SECONDS - start)) s"

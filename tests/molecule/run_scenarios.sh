#!/usr/bin/env bash
# Run `molecule test` for every scenario under roles/*/molecule/*/ (or for the roles named).
#
#   tests/molecule/run_scenarios.sh [ROLE...]
#
# Each scenario's output goes to the terminal and to .tmp/molecule/<role>-<scenario>.log.
# A scenario fails when molecule fails, or when its output holds private key material
# (a guard for the promise that secrets never reach logs). All scenarios run; the summary
# names each with its result and time, and the exit status is 1 if any failed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LOGDIR="${ROOT}/.tmp/molecule"
mkdir -p "${LOGDIR}"
command -v molecule >/dev/null || { echo "molecule: not on PATH (run make venv)" >&2; exit 1; }

roles=("$@")
scenarios=()
for dir in "${ROOT}"/roles/*/molecule/*/; do
  [ -f "${dir}molecule.yml" ] || continue
  role="$(basename "$(dirname "$(dirname "${dir}")")")"
  if (( ${#roles[@]} )) && [[ ! " ${roles[*]} " == *" ${role} "* ]]; then
    continue
  fi
  scenarios+=("${role}/$(basename "${dir}")")
done
if (( ! ${#scenarios[@]} )); then
  echo "molecule: no scenario found under roles/*/molecule/*/${roles[*]:+ for ${roles[*]}}" >&2
  exit 1
fi

# Private key blocks (armored OpenPGP, PEM) must never show up in a run's output.
secret_re='-----BEGIN ([A-Z]+ )*PRIVATE KEY( BLOCK)?-----'

results=()
failed=0
for scenario in "${scenarios[@]}"; do
  role="${scenario%%/*}"
  name="${scenario#*/}"
  log="${LOGDIR}/${role}-${name}.log"
  echo "=== molecule test: role ${role}, scenario ${name} (log: ${log})"
  start=${SECONDS}
  rc=0
  (cd "${ROOT}/roles/${role}" && molecule test --scenario-name "${name}") 2>&1 | tee "${log}" || rc=$?
  took=$((SECONDS - start))
  if grep -Eq -- "${secret_re}" "${log}"; then
    echo "molecule: ${scenario}: PRIVATE KEY MATERIAL in the output (${log})" >&2
    (( rc )) || rc=1
  fi
  if (( rc == 0 )); then
    results+=("ok      ${scenario} (${took} s)")
  else
    results+=("FAILED  ${scenario} (${took} s, exit ${rc}, log ${log})")
    failed=1
  fi
done

echo "=== molecule summary"
printf '  %s\n' "${results[@]}"
exit "${failed}"

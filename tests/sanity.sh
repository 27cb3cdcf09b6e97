#!/usr/bin/env bash
# Run `ansible-test sanity` on a clean copy of the collection (no ignore file needed).
#
# ansible-test wants the collection at .../ansible_collections/dbdr/backup.  The copy lives
# in .tmp/sanity inside this checkout, so it is made a git repository of its own: otherwise
# ansible-test walks up to the checkout's .git, asks git for the file list and finds none of
# the copied files (.tmp/ is ignored).  ansible-test also bootstraps pip in each test venv
# from a get-pip.py download that cannot be reached here; a cached stand-in that runs
# ensurepip satisfies it (see shared TESTING.md).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${ROOT}/.venv"
PYVER="${SANITY_PYTHON:-3.11}"
DEST="${ROOT}/.tmp/sanity/ansible_collections/dbdr/backup"
export PATH="${VENV}/bin:${PATH}"

command -v ansible-test >/dev/null || { echo "sanity: ansible-test not found (run make venv)" >&2; exit 1; }

# get-pip stand-in, named after the version ansible-test asks for.
pip_ver="$(python - <<'PY' || true
import re
import ansible_test._internal.python_requirements as pr
print(" ".join(sorted(set(re.findall(r"pip='([0-9.]+)'", open(pr.__file__).read())))))
PY
)"
cache_dir="${HOME}/.ansible/test/cache"
mkdir -p "${cache_dir}"
for v in ${pip_ver} 24.2; do
  f="${cache_dir}/get_pip_${v//./_}.py"
  if [ ! -s "${f}" ]; then
    printf 'import ensurepip\nensurepip.bootstrap(upgrade=True)\n' > "${f}"
  fi
done

# Fresh copy of tracked + untracked-not-ignored files.
rm -rf "${ROOT}/.tmp/sanity"
mkdir -p "${DEST}"
cd "${ROOT}"
if git -C "${ROOT}" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git -C "${ROOT}" ls-files -z -co --exclude-standard \
    | while IFS= read -r -d '' f; do [ -e "$f" ] || [ -L "$f" ] && printf '%s\0' "$f"; done \
    | tar -C "${ROOT}" --null -T - -cf - | tar -C "${DEST}" -xf -
else
  tar -C "${ROOT}" --exclude=./.git --exclude=./.venv --exclude=./.tmp --exclude=./.demo \
      --exclude=./tests/output --exclude=__pycache__ -cf - . | tar -C "${DEST}" -xf -
fi
git -C "${DEST}" init -q
git -C "${DEST}" add -A

cd "${DEST}"
echo "sanity: ansible-test sanity --local --python ${PYVER} in ${DEST}"
ansible-test sanity --local --python "${PYVER}" --color no "$@"

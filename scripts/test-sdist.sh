#!/usr/bin/env bash
# Build the sdist, install it (not editable) into a fresh virtual environment, and run the default test
# suite from the unpacked sdist against the installed package: what a user who downloads the sdist gets.
# The fresh environment borrows the dependencies already installed in .venv (a path in a .pth file; the
# editable nsvae of .venv is not on it), so nothing large is downloaded again. Run by .ci/run after the
# default tests; `make test-sdist` runs it here.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV_PY="${VENV_PY:-.venv/bin/python}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$VENV_PY" -c "from setuptools import build_meta; build_meta.build_sdist('$work/dist')" >/dev/null
sdist=$(ls "$work"/dist/nsvae-*.tar.gz)
tar xzf "$sdist" -C "$work"
src=$(ls -d "$work"/nsvae-*/)
"$VENV_PY" -m venv --without-pip "$work/env"
deps=$("$VENV_PY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
site=$("$work/env/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
echo "$deps" > "$site/nsvae-test-deps.pth"
"$VENV_PY" -m pip --python "$work/env/bin/python" install --quiet --no-deps --no-build-isolation "$sdist"
cd "$src"
installed=$("$work/env/bin/python" -c "import nsvae, os; print(os.path.dirname(nsvae.__file__))")
case "$installed" in
    "$site"*) echo "test-sdist: testing the installed $(basename "$sdist") ($installed)";;
    *) echo "test-sdist: nsvae was imported from $installed, not from the fresh environment" >&2; exit 1;;
esac
"$work/env/bin/python" -m pytest -m "not slow" -q -p no:cacheprovider "$@"

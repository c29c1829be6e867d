#!/usr/bin/env bash
# Idempotent setup: .venv with torch, ROS 2 wheels, compiled l2p_msgs, l2p_ros (editable) and assets.
# Each step is skipped when its stamp is newer than its inputs, so a second run takes seconds.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null || PY=python3
STAMPS="$VENV/.l2p-stamps"

step() { printf '\n== %s\n' "$*"; }
fresh() { # fresh STAMP INPUT... : true when STAMP exists and is newer than every input
  local stamp="$STAMPS/$1"; shift
  [[ -f "$stamp" ]] || return 1
  local f; for f in "$@"; do [[ "$f" -nt "$stamp" ]] && return 1; done; return 0
}
stamp() { mkdir -p "$STAMPS"; touch "$STAMPS/$1"; }

if [[ ! -x "$VENV/bin/python" ]]; then
  step "creating $VENV with $($PY --version)"
  "$PY" -m venv "$VENV"
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"
PIP=(python -m pip install --quiet --disable-pip-version-check)

case "$(uname -m)" in
  x86_64) TORCH=(torch==2.14.1 torchvision==0.29.1) ;;
  aarch64) TORCH=(torch==2.9.1 torchvision==0.24.1) ;;
  *) echo "unsupported architecture $(uname -m)" >&2; exit 1 ;;
esac
if ! fresh torch "$0"; then
  step "installing ${TORCH[*]}"
  "${PIP[@]}" "${TORCH[@]}" 2> >(grep -v "is ignored: it is neither" >&2)
  stamp torch
fi

if ! fresh requirements "$ROOT/requirements.txt"; then
  step "installing requirements.txt"
  "${PIP[@]}" -r "$ROOT/requirements.txt" 2> >(grep -v "is ignored: it is neither" >&2)
  stamp requirements
fi

if ! fresh msgs "$ROOT"/msg/msg/*.msg "$ROOT/msg/CMakeLists.txt" "$ROOT/msg/package.xml" || \
   ! python -c "import l2p_msgs.msg" 2>/dev/null; then
  step "building l2p_msgs into the venv"
  BUILD="$ROOT/build/l2p_msgs"
  rm -rf "$BUILD"; mkdir -p "$BUILD"
  export AMENT_PREFIX_PATH="$VENV"
  cmake -S "$ROOT/msg" -B "$BUILD" -DCMAKE_INSTALL_PREFIX="$VENV" -DBUILD_TESTING=OFF \
    -DPython3_EXECUTABLE="$VENV/bin/python" >"$BUILD/cmake.log" 2>&1 || { tail -30 "$BUILD/cmake.log"; exit 1; }
  cmake --build "$BUILD" -j "$(nproc)" >"$BUILD/build.log" 2>&1 || { tail -30 "$BUILD/build.log"; exit 1; }
  cmake --install "$BUILD" >"$BUILD/install.log" 2>&1 || { tail -30 "$BUILD/install.log"; exit 1; }
  python -c "import l2p_msgs.msg"
  stamp msgs
fi

if ! fresh package "$ROOT/setup.py" "$ROOT/setup.cfg"; then
  step "installing l2p_ros (editable)"
  "${PIP[@]}" --no-deps --no-build-isolation -e "$ROOT" 2> >(grep -v "is ignored: it is neither" >&2)
  stamp package
fi

step "assets"
l2p fetch-assets
echo "setup complete: source $VENV/bin/activate"

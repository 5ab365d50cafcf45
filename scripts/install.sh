#!/usr/bin/env bash
# Install bortkit into ./.venv with the pinned stack, then build its fused CPU operators.
#   bash scripts/install.sh            the library (MXNet 1.9.1, GluonNLP 0.10.0, Optuna, ...)
#   bash scripts/install.sh test       + test extra + Horovod (built from source against MXNet)
#                                      + Debian's PostgreSQL server (apt-get)
#   bash scripts/install.sh bench      + PyTorch/transformers for side-by-side benchmarks
# Extras combine: bash scripts/install.sh test,bench
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python3 -m venv .venv
py=.venv/bin/python
"$py" -m pip install --quiet --upgrade pip wheel setuptools
spec="."
[ -n "$extras" ] && spec=".[${extras}]"
"$py" -m pip install --quiet -c constraints.txt -e "$spec"

# The sweep's PostgreSQL test (tests/test_sweep_postgres.py) starts a server of its own:
# Debian's postgresql package (initdb/pg_ctl under /usr/lib/postgresql/N/bin).
if [[ ",$extras," == *",test,"* ]] && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
    && ! command -v initdb >/dev/null 2>&1; then
  echo "installing the PostgreSQL server (Debian's postgresql) for the sweep tests..."
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >/dev/null
fi

# Horovod must be compiled after MXNet, without build isolation, with the system cmake.
if [[ ",$extras," == *",test,"* || ",$extras," == *",distributed,"* ]]; then
  if ! "$py" -c "import horovod.mxnet" 2>/dev/null; then
    echo "building horovod 0.28.1 against MXNet (about 2 minutes)..."
    HOROVOD_WITH_MXNET=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 \
    HOROVOD_WITHOUT_TENSORFLOW=1 HOROVOD_WITHOUT_PYTORCH=1 \
      "$py" -m pip install --quiet --no-build-isolation -c constraints.txt horovod==0.28.1
  fi
fi
# Compile the fused C++ operators (bortkit/ops/*.cc) into the cache now rather than on first
# use. Without a compiler bortkit runs on MXNet's own operators, so this is not fatal.
if ! "$py" -m bortkit.ops build; then
  echo "warning: fused operators not built; bortkit will use MXNet's operators (slower)" >&2
fi
echo "bortkit installed in $(pwd)/.venv"

#!/usr/bin/env bash
# Installs every build and test dependency of quantlab from Debian 12's own packages.
# Nothing is downloaded from anywhere else; see README.md for why each package is here.
set -euo pipefail
PACKAGES=(
  build-essential cmake ninja-build pkg-config
  libhwy-dev            # portable SIMD with runtime dispatch (kernels/)
  libcli11-dev          # command-line parsing (cli/)
  libfmt-dev            # formatting of messages and tables
  nlohmann-json3-dev    # config.json, safetensors headers, reports
  libpcre2-dev          # tokenizer pre-split regex with Unicode classes (text/)
  libutf8proc-dev       # NFC normalisation (text/)
  libtomlplusplus-dev   # criteria files (eval/)
  libgtest-dev libgmock-dev  # unit tests
  libbenchmark-dev      # micro-benchmarks
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"

#!/usr/bin/env bash
# Installs every build and test dependency of quantlab from Debian 12's own packages.
# Nothing is downloaded from anywhere else; see README.md for why each package is here.
#   scripts/install-deps.sh            the build, the tests, the sanitizer tree and the fuzzers
#   scripts/install-deps.sh --arm64    also the Arm cross toolchain, qemu and arm64 libraries
#                                      (scripts/test-arm64.sh; adds dpkg's arm64 architecture)
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
  libeigen3-dev         # Cholesky factorisation and dense products of GPTQ rounding (quant/gptq.cc)
  libcpp-httplib-dev    # the HTTP server of `serve` and the client of `bench --model NAME=URL` (serve/)
  libgtest-dev libgmock-dev  # unit tests
  libbenchmark-dev      # micro-benchmarks
  clang libclang-rt-14-dev   # the sanitizer tree and libFuzzer (scripts/sanitizer-tree.sh, fuzz.sh)
)
ARM64_PACKAGES=(
  g++-aarch64-linux-gnu qemu-user  # cross compiler and the emulator the Arm tests run under
  libhwy-dev:arm64 libfmt-dev:arm64 libpcre2-dev:arm64 libutf8proc-dev:arm64
  libtomlplusplus-dev:arm64 libgtest-dev:arm64 libgmock-dev:arm64 libcpp-httplib-dev:arm64
)
# node and npm run the OpenAI client compatibility test (tests/openai_client_test.sh); a node already on
# PATH (e.g. NodeSource's, which bundles npm and conflicts with Debian's npm package) is used as it is.
command -v npm >/dev/null 2>&1 || PACKAGES+=(nodejs npm)
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if [ "${1:-}" = "--arm64" ]; then
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    echo "install-deps: adding the arm64 architecture to dpkg (multiarch)"
    $SUDO dpkg --add-architecture arm64
  fi
  PACKAGES+=("${ARM64_PACKAGES[@]}")
fi
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"

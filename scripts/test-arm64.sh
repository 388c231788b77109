#!/usr/bin/env bash
# The Arm run (docs/arm.md): cross-compiles the kernel, quant, model and text layers and their tests
# for aarch64 with Debian's g++-aarch64-linux-gnu and runs them under qemu-aarch64 on three emulated
# CPUs, so that every Highway target quantlab compiles for Arm runs:
#   cortex-a57               NEON (no SVE)                    -> NEON and the portable fallback
#   a64fx                    SVE at 512 bits (no SVE2)        -> SVE, NEON, fallback
#   max,sve-default-vector-length=16   SVE2 at 128 bits       -> SVE on an SVE2 CPU, short vectors
# The kernel tests run each kernel once per target the CPU supports (kernels_test_util.h).
# Usage: scripts/test-arm64.sh [GTEST_FILTER]; QUANTLAB_ARM_LAYERS="kernels quant" runs those layers only
# (CI does, for time; default: all six).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${QUANTLAB_ARM_BUILD:-build-arm64}
JOBS=${JOBS:-$(nproc)}
FILTER=${1:-*}
read -r -a LAYERS <<<"${QUANTLAB_ARM_LAYERS:-core io kernels quant model text}"
bash scripts/install-deps.sh --arm64

cmake -S . -B "$BUILD" -G Ninja -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake \
  -DCMAKE_BUILD_TYPE=Release -DQUANTLAB_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build "$BUILD" -j "$JOBS" --target "${LAYERS[@]/#/test_}"

read -r -a CPUS <<<"${QUANTLAB_ARM_CPUS:-cortex-a57 a64fx max,sve-default-vector-length=16}"
# qemu emulates each SVE instruction in a helper loop: the large matmul sweeps take 35-55 s each on the
# SVE CPUs (17 minutes for the kernel tests) against 47 s for all kernel tests on NEON. On SVE they
# are left out unless QUANTLAB_ARM_FULL=1; the SVE matmul micro-kernel still runs in the other
# MatmulTest cases and every width's unpacking in the matvec tests (docs/arm.md).
# GPTQ's and the recursive Cholesky's products are the matmul kernel the MatmulTest cases cover on SVE;
# their own tests (hundreds of such products) run on the NEON CPU only, for time.
SVE_SKIP='*AffineMatmulTest.MatchesDoubleReferenceWithinBound*:MatmulTest.LongRowsWalkedInChunksOfK:Gptq.*:GptqLowRank.*:Cholesky.*'
status=0
for cpu in "${CPUS[@]}"; do
  filter=$FILTER
  if [ "$cpu" != cortex-a57 ] && [ "${QUANTLAB_ARM_FULL:-0}" != 1 ]; then filter="$FILTER-$SVE_SKIP"; fi
  for layer in "${LAYERS[@]}"; do
    log="$BUILD/arm64-$layer-${cpu%%,*}.log"
    # The test binaries find tests/data through the path compiled in; they run from the source tree.
    if QEMU_CPU="$cpu" timeout 1200 qemu-aarch64 "$BUILD/tests/test_$layer" --gtest_filter="$filter" \
         --gtest_brief=1 >"$log" 2>&1; then
      echo "arm64 [$cpu] test_$layer: $(grep -Eo '[0-9]+ tests? from [0-9]+ test suites? ran' "$log" | head -1), passed"
    else
      echo "arm64 [$cpu] test_$layer: FAILED (log: $log)"
      grep -E '^\[  FAILED|Failure|error' "$log" | head -20
      status=1
    fi
    grep -h '^highway targets' "$log" | sed "s/^/arm64 [$cpu] /" || true
  done
done
exit $status

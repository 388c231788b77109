// The Highway targets quantlab compiles its kernels for. Include this before any hwy header in every
// translation unit of kernels/ (and in tests that enumerate targets), so all of them agree.
//
// Kept: AVX3 (AVX-512), AVX2, SSE4 on x86; NEON and SVE on Arm; the portable fallback (SCALAR with
// GCC < 12.3, where Highway considers EMU128 broken, else EMU128). Dropped to bound compile time:
// SSSE3 (SSE4 covers every x86-64 CPU that has it in practice), AVX3_DL (opt-in in Highway 1.0.3 and
// no faster for these kernels), and the vector-length-specialised SVE variants (plain SVE runs there).
#pragma once

// On Arm, Highway's default leaves out the portable fallback (every aarch64 CPU has NEON, the baseline).
// Compiled anyway so that the Arm run (scripts/test-arm64.sh) tests it on Arm too; on x86 the set is
// the same either way (the fallback is below the x86-64 baseline and always compiled).
#if defined(__aarch64__) && !defined(HWY_COMPILE_ALL_ATTAINABLE)
#define HWY_COMPILE_ALL_ATTAINABLE
#endif

#ifndef HWY_DISABLED_TARGETS
#define HWY_DISABLED_TARGETS (HWY_SSSE3 | HWY_AVX3_DL | HWY_SVE2 | HWY_SVE_256 | HWY_SVE2_128)
#endif

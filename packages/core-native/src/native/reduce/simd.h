#pragma once

// Vector code per CPU. x86-64: hot loops are cloned for AVX2 and the baseline, and the loader
// picks the clone the CPU can run. aarch64: NEON is part of the base instruction set, so the plain
// loops vectorise with it. Any other target: the compiler's baseline (scalar at worst).
#if defined(__x86_64__)
#define UNICC_VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define UNICC_VECTOR_CLONES
#endif

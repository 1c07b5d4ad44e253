// SIMD helpers shared by the kernel files (not part of the module's interface): Cephes expf on
// eight lanes, horizontal sums and maxima, and the run-time AVX2 check.
#ifndef LORAMD_SIMD_H
#define LORAMD_SIMD_H

#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,fma")))
#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,fma,f16c")))

// fp32 to bf16, rounded to nearest even; a NaN stays a quiet NaN (PyTorch's .to(torch.bfloat16)).
static inline unsigned short narrow_bf16(float f) {
    unsigned int b;
    __builtin_memcpy(&b, &f, 4);
    return (b & 0x7fffffffu) > 0x7f800000u ? (unsigned short)((b >> 16) | 0x40)
                                           : (unsigned short)((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
}

// Cephes expf: range reduction by ln 2 in two parts, a degree-6 polynomial, 2^n from the bits.
AVX2 static inline __m256 exp256(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.7f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

AVX2 static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

AVX2 static inline float hmax256(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

static inline int has_avx2(void) {
    static int cached = -1;
    if (cached < 0) { __builtin_cpu_init(); cached = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }
    return cached;
}

// NF4 element access shared by the NF4 kernels: block b's absmax (plain, or double-quantized),
// and element e's code index (the high nibble of packed[e/2] for even e).
static inline float nf4_absmax(long b, const float *plain, const unsigned char *index, const float *map, const float *scales, float offset) {
    return plain ? plain[b] : map[index[b]] * scales[b / 256] + offset;
}

static inline int nf4_nibble(const unsigned char *packed, long e) {
    unsigned char v = packed[e >> 1];
    return (e & 1) ? (v & 15) : (v >> 4);
}

// AVX-512 kernels (avx512.c), used where lk_has_avx512() says the CPU runs them.
int lk_has_avx512(void);
void lk_gemv32_avx512(const float *w, const float *x, float *y, long k, long row0, long row1, float beta);
void lk_gemv16_avx512(const unsigned short *w, int bf16, const float *x, float *y, long k, long row0, long row1, float beta);
void lk_gemv_nf4_avx512(const unsigned char *packed, const float *code, long blockSize,
                        const float *plain, const unsigned char *index, const float *map, const float *scales, float offset,
                        const float *x, float *y, long k, long row0, long row1, float beta);

#endif

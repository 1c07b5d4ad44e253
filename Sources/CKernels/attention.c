#include "CKernels.h"
#include "simd.h"

// One query row against one head's cache, for decode: a single pass per step over the head's keys
// and one over its values, with no OpenBLAS call (whose threads a tiny per-head product would wake
// 2 x heads times per layer). AVX-512 where the CPU has it and the head size is a multiple of 16
// (1.45-1.8x the AVX2 version at 320 and 2048 keys, bench/results/attend-one-2026-12-03.txt).

static void attend_one_portable(const float *q, const float *keys, const float *values, long d, long visible,
                                float scale, float *scores, float *out) {
    for (long j = 0; j < visible; j++) {
        float s = 0;
        for (long i = 0; i < d; i++) s += q[i] * keys[j * d + i];
        scores[j] = s * scale;
    }
    lk_softmax_causal(scores, visible, 0, 1, visible);
    for (long i = 0; i < d; i++) out[i] = 0;
    for (long j = 0; j < visible; j++)
        for (long i = 0; i < d; i++) out[i] += scores[j] * values[j * d + i];
}

AVX2 static void attend_one_avx2(const float *q, const float *keys, const float *values, long d, long visible,
                                 float scale, float *scores, float *out) {
    long d8 = d & ~7L;
    for (long j = 0; j < visible; j++) {
        const float *k = keys + j * d;
        __m256 acc = _mm256_setzero_ps();
        long i = 0;
        for (; i < d8; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), _mm256_loadu_ps(k + i), acc);
        float s = hsum256(acc);
        for (; i < d; i++) s += q[i] * k[i];
        scores[j] = s * scale;
    }
    lk_softmax_causal(scores, visible, 0, 1, visible);
    long i = 0;
    // Eight output lanes at a time held in registers across all positions, then the tail.
    for (; i + 32 <= d8; i += 32) {
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
        for (long j = 0; j < visible; j++) {
            const float *v = values + j * d + i;
            __m256 p = _mm256_set1_ps(scores[j]);
            a0 = _mm256_fmadd_ps(p, _mm256_loadu_ps(v), a0);
            a1 = _mm256_fmadd_ps(p, _mm256_loadu_ps(v + 8), a1);
            a2 = _mm256_fmadd_ps(p, _mm256_loadu_ps(v + 16), a2);
            a3 = _mm256_fmadd_ps(p, _mm256_loadu_ps(v + 24), a3);
        }
        _mm256_storeu_ps(out + i, a0); _mm256_storeu_ps(out + i + 8, a1);
        _mm256_storeu_ps(out + i + 16, a2); _mm256_storeu_ps(out + i + 24, a3);
    }
    for (; i < d8; i += 8) {
        __m256 a = _mm256_setzero_ps();
        for (long j = 0; j < visible; j++) a = _mm256_fmadd_ps(_mm256_set1_ps(scores[j]), _mm256_loadu_ps(values + j * d + i), a);
        _mm256_storeu_ps(out + i, a);
    }
    for (; i < d; i++) {
        float a = 0;
        for (long j = 0; j < visible; j++) a += scores[j] * values[j * d + i];
        out[i] = a;
    }
}

// Sixteen registers' lane sums, in order, in one register: pairs of registers (then of halves,
// quarters, pairs of lanes) added a level at a time, 46 shuffles and adds for sixteen sums where
// sixteen horizontal sums take 128.
AVX512 static inline __m512 sums16(__m512 v[16]) {
    __m512 t[8], u[4], w[2];
    for (int i = 0; i < 8; i++)  // lanes 0-7: register 2i's halves added; 8-15: 2i + 1's
        t[i] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0x44), _mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0xee));
    for (int i = 0; i < 4; i++)  // quarter c: register 4i + c's partial sums
        u[i] = _mm512_add_ps(_mm512_shuffle_f32x4(t[2 * i], t[2 * i + 1], 0x88), _mm512_shuffle_f32x4(t[2 * i], t[2 * i + 1], 0xdd));
    for (int i = 0; i < 2; i++)  // quarter c: two partials of 8i + c, then two of 8i + 4 + c
        w[i] = _mm512_add_ps(_mm512_shuffle_ps(u[2 * i], u[2 * i + 1], 0x44), _mm512_shuffle_ps(u[2 * i], u[2 * i + 1], 0xee));
    // Lane 4c + j holds register c + 4j's sum.
    __m512 z = _mm512_add_ps(_mm512_shuffle_ps(w[0], w[1], 0x88), _mm512_shuffle_ps(w[0], w[1], 0xdd));
    return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), z);
}

// q·k's d products (d a multiple of 16) as sixteen lane sums.
AVX512 static inline __m512 products16(const float *q, const float *k, long d) {
    __m512 a = _mm512_mul_ps(_mm512_loadu_ps(q), _mm512_loadu_ps(k));
    for (long i = 16; i < d; i += 16) a = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), _mm512_loadu_ps(k + i), a);
    return a;
}

// AVX-512, for head sizes that are multiples of 16: scores sixteen keys at a time (sums16), and
// the output in one pass over the values for up to 64 lanes (four registers), where the AVX2
// version takes a horizontal sum per key and two passes for a head of 64.
AVX512 static void attend_one_avx512(const float *q, const float *keys, const float *values, long d, long visible,
                                     float scale, float *scores, float *out) {
    long j = 0;
    for (; j + 16 <= visible; j += 16) {
        __m512 v[16];
        for (int t = 0; t < 16; t++) v[t] = products16(q, keys + (j + t) * d, d);
        _mm512_storeu_ps(scores + j, _mm512_mul_ps(sums16(v), _mm512_set1_ps(scale)));
    }
    for (; j < visible; j++) scores[j] = _mm512_reduce_add_ps(products16(q, keys + j * d, d)) * scale;
    lk_softmax_causal(scores, visible, 0, 1, visible);
    long i = 0;
    for (; i + 64 <= d; i += 64) {
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (long t = 0; t < visible; t++) {
            const float *v = values + t * d + i;
            __m512 p = _mm512_set1_ps(scores[t]);
            a0 = _mm512_fmadd_ps(p, _mm512_loadu_ps(v), a0);
            a1 = _mm512_fmadd_ps(p, _mm512_loadu_ps(v + 16), a1);
            a2 = _mm512_fmadd_ps(p, _mm512_loadu_ps(v + 32), a2);
            a3 = _mm512_fmadd_ps(p, _mm512_loadu_ps(v + 48), a3);
        }
        _mm512_storeu_ps(out + i, a0); _mm512_storeu_ps(out + i + 16, a1);
        _mm512_storeu_ps(out + i + 32, a2); _mm512_storeu_ps(out + i + 48, a3);
    }
    for (; i < d; i += 16) {
        __m512 a = _mm512_setzero_ps();
        for (long t = 0; t < visible; t++) a = _mm512_fmadd_ps(_mm512_set1_ps(scores[t]), _mm512_loadu_ps(values + t * d + i), a);
        _mm512_storeu_ps(out + i, a);
    }
}

void lk_attend_one(const float *q, const float *keys, const float *values, long d, long visible,
                   float scale, float *scores, float *out) {
    if (d % 16 == 0 && lk_has_avx512()) attend_one_avx512(q, keys, values, d, visible, scale, scores, out);
    else if (has_avx2()) attend_one_avx2(q, keys, values, d, visible, scale, scores, out);
    else attend_one_portable(q, keys, values, d, visible, scale, scores, out);
}

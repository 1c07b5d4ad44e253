#include "CKernels.h"
#include "simd.h"

// One query row against one head's cache, for decode: a single pass per step over the head's keys
// and one over its values, with no OpenBLAS call (whose threads a tiny per-head product would wake
// 2 x heads times per layer).

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

void lk_attend_one(const float *q, const float *keys, const float *values, long d, long visible,
                   float scale, float *scores, float *out) {
    if (has_avx2()) attend_one_avx2(q, keys, values, d, visible, scale, scores, out);
    else attend_one_portable(q, keys, values, d, visible, scale, scores, out);
}

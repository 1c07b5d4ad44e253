#include "simd.h"

// Decode's one-row products on AVX-512, where the CPU has it: decode is bound by how fast weight
// rows stream in, and sixteen lanes halve the instructions per weight byte of the AVX2 versions.

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,fma,f16c")))

AVX512 static inline __m512 load16_16(const unsigned short *p, int bf16) {
    __m256i h = _mm256_loadu_si256((const __m256i *)p);
    if (bf16) return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    return _mm512_cvtph_ps(h);
}

static inline float widen1(unsigned short bits, int bf16) {
    if (bf16) { union { unsigned int u; float f; } v = { (unsigned int)bits << 16 }; return v.f; }
    _Float16 h; __builtin_memcpy(&h, &bits, 2); return (float)h;
}

AVX512 static float tail(const unsigned short *row, int bf16, const float *x, long from, long k) {
    float s = 0;
    for (long i = from; i < k; i++) s += widen1(row[i], bf16) * x[i];
    return s;
}

AVX512 void lk_gemv16_avx512(const unsigned short *w, int bf16, const float *x, float *y, long k, long row0, long row1, float beta) {
    long k16 = k & ~15L, r = row0;
    for (; r + 4 <= row1; r += 4) {
        const unsigned short *w0 = w + r * k, *w1 = w0 + k, *w2 = w1 + k, *w3 = w2 + k;
        __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
        for (long i = 0; i < k16; i += 16) {
            __m512 xv = _mm512_loadu_ps(x + i);
            a0 = _mm512_fmadd_ps(load16_16(w0 + i, bf16), xv, a0);
            a1 = _mm512_fmadd_ps(load16_16(w1 + i, bf16), xv, a1);
            a2 = _mm512_fmadd_ps(load16_16(w2 + i, bf16), xv, a2);
            a3 = _mm512_fmadd_ps(load16_16(w3 + i, bf16), xv, a3);
        }
        float s[4] = { _mm512_reduce_add_ps(a0) + tail(w0, bf16, x, k16, k), _mm512_reduce_add_ps(a1) + tail(w1, bf16, x, k16, k),
                       _mm512_reduce_add_ps(a2) + tail(w2, bf16, x, k16, k), _mm512_reduce_add_ps(a3) + tail(w3, bf16, x, k16, k) };
        for (int j = 0; j < 4; j++) y[r + j] = beta == 0 ? s[j] : beta * y[r + j] + s[j];
    }
    for (; r < row1; r++) {
        const unsigned short *row = w + r * k;
        __m512 a = _mm512_setzero_ps();
        for (long i = 0; i < k16; i += 16) a = _mm512_fmadd_ps(load16_16(row + i, bf16), _mm512_loadu_ps(x + i), a);
        float s = _mm512_reduce_add_ps(a) + tail(row, bf16, x, k16, k);
        y[r] = beta == 0 ? s : beta * y[r] + s;
    }
}

// lk_gemv_nf4 sixteen elements (eight bytes) at a time: one permute looks up all sixteen codes
// (AVX2 needs two and a blend), two accumulators so consecutive FMAs do not wait on each other.
AVX512 void lk_gemv_nf4_avx512(const unsigned char *packed, const float *code, long blockSize,
                               const float *plain, const unsigned char *index, const float *map, const float *scales, float offset,
                               const float *x, float *y, long k, long row0, long row1, float beta) {
    const __m512 table = _mm512_loadu_ps(code);
    const __m128i pairs = _mm_setr_epi8(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    const __m512i shifts = _mm512_setr_epi32(4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0), fifteen = _mm512_set1_epi32(15);
    for (long r = row0; r < row1; r++) {
        long e0 = r * k, e = e0, end = e0 + k;
        __m512 total = _mm512_setzero_ps();
        float rest = 0;
        while (e < end) {
            long b = e / blockSize, stop = (b + 1) * blockSize < end ? (b + 1) * blockSize : end;
            float scale = nf4_absmax(b, plain, index, map, scales, offset), part = 0;
            // Scalar until an even element (a byte boundary), then 16 elements (8 bytes) at a time.
            if (e & 1 && e < stop) { part += code[nf4_nibble(packed, e)] * x[e - e0]; e++; }
            __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
            for (; e + 32 <= stop; e += 32) {
                __m128i bytes = _mm_loadu_si128((const __m128i *)(packed + (e >> 1)));
                __m512i i0 = _mm512_and_si512(_mm512_srlv_epi32(_mm512_cvtepu8_epi32(_mm_shuffle_epi8(bytes, pairs)), shifts), fifteen);
                __m512i i1 = _mm512_and_si512(_mm512_srlv_epi32(_mm512_cvtepu8_epi32(_mm_shuffle_epi8(_mm_srli_si128(bytes, 8), pairs)), shifts), fifteen);
                acc0 = _mm512_fmadd_ps(_mm512_permutexvar_ps(i0, table), _mm512_loadu_ps(x + (e - e0)), acc0);
                acc1 = _mm512_fmadd_ps(_mm512_permutexvar_ps(i1, table), _mm512_loadu_ps(x + (e - e0) + 16), acc1);
            }
            for (; e + 16 <= stop; e += 16) {
                __m128i bytes = _mm_loadl_epi64((const __m128i *)(packed + (e >> 1)));
                __m512i i0 = _mm512_and_si512(_mm512_srlv_epi32(_mm512_cvtepu8_epi32(_mm_shuffle_epi8(bytes, pairs)), shifts), fifteen);
                acc0 = _mm512_fmadd_ps(_mm512_permutexvar_ps(i0, table), _mm512_loadu_ps(x + (e - e0)), acc0);
            }
            for (; e < stop; e++) part += code[nf4_nibble(packed, e)] * x[e - e0];
            total = _mm512_fmadd_ps(_mm512_add_ps(acc0, acc1), _mm512_set1_ps(scale), total);
            rest += part * scale;
        }
        float sum = _mm512_reduce_add_ps(total) + rest;
        y[r] = beta == 0 ? sum : beta * y[r] + sum;
    }
}

int lk_has_avx512(void) {
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")
            && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    }
    return cached;
}

#include "simd.h"

// Decode's one-row products on AVX-512, where the CPU has it: decode is bound by how fast weight
// rows stream in, and sixteen lanes halve the instructions per weight byte of the AVX2 versions.

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

// The next weights to stream, asked for ahead of the FMAs: without this the loop runs at about
// two thirds of a plain streaming read (the hardware prefetcher alone does not keep up). Rows of
// up to 8 KB are read four together, so the same columns of the next four rows are fetched;
// longer rows 1 KB ahead within themselves. `at` is where the first of the four rows is being
// read; `row` is a row's length in bytes. Always inlined: GCC counts a function of prefetches
// alone as free of effects and drops the calls.
AVX512 __attribute__((always_inline)) static inline void fetch_ahead(const void *at, long row) {
    const char *p = (const char *)at + (row <= 8192 ? 4 * row : 1024);
    _mm_prefetch(p, _MM_HINT_T0); _mm_prefetch(p + row, _MM_HINT_T0);
    _mm_prefetch(p + 2 * row, _MM_HINT_T0); _mm_prefetch(p + 3 * row, _MM_HINT_T0);
}

#define CHUNK 4096L  // columns of x permuted at a time (16 KB on the stack)

// x[c0, c0 + n) (n a multiple of 32) laid out per group of 32 as its 16 even then 16 odd
// elements: a 64-byte load of 32 bf16 weights splits into those two halves with one shift
// (evens) and one mask (odds), where widening sixteen at a time takes a convert and a shift each.
AVX512 static void even_odd(const float *x, long n, float *out) {
    const __m512i evens = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odds = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    for (long g = 0; g < n; g += 32) {
        __m512 lo = _mm512_loadu_ps(x + g), hi = _mm512_loadu_ps(x + g + 16);
        _mm512_storeu_ps(out + g, _mm512_permutex2var_ps(lo, evens, hi));
        _mm512_storeu_ps(out + g + 16, _mm512_permutex2var_ps(lo, odds, hi));
    }
}

AVX512 static inline __m512 evens16(__m512i v) { return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16)); }
AVX512 static inline __m512 odds16(__m512i v) { return _mm512_castsi512_ps(_mm512_and_si512(v, _mm512_set1_epi32((int)0xffff0000))); }

// Columns [c0, c1) of rows [row0, row1) of a weight against x, added to sums[r - row0]; xp is
// x[c0, c0 + n32) in even_odd's layout (n32 = c1 - c0 rounded down to 32) where the kind asks for it.
typedef void (*columns_fn)(const void *weight, const float *x, const float *xp, float *sums, long k,
                           long c0, long c1, long row0, long row1);

// Rows [row0, row1) of y = W·x (+ beta·y) through `columns`: rows 256 at a time and columns
// CHUNK at a time, so x's permuted copy and the sums stay on the stack.
AVX512 static void by_blocks(columns_fn columns, const void *weight, int permuted, const float *x, float *y, long k,
                             long row0, long row1, float beta) {
    float xp[CHUNK], sums[256];
    for (long r0 = row0; r0 < row1; r0 += 256) {
        long r1 = r0 + 256 < row1 ? r0 + 256 : row1;
        for (long r = r0; r < r1; r++) sums[r - r0] = 0;
        for (long c0 = 0; c0 < k; c0 += CHUNK) {
            long c1 = c0 + CHUNK < k ? c0 + CHUNK : k;
            if (permuted && (r0 == row0 || k > CHUNK)) even_odd(x + c0, (c1 - c0) & ~31L, xp);
            columns(weight, x, xp, sums, k, c0, c1, r0, r1);
        }
        for (long r = r0; r < r1; r++) y[r] = beta == 0 ? sums[r - r0] : beta * y[r] + sums[r - r0];
    }
}

// bf16 columns: each 64-byte load splits into even and odd elements against xp.
AVX512 static void bf16_columns(const void *weight, const float *x, const float *xp, float *sums, long k,
                                long c0, long c1, long row0, long row1) {
    const unsigned short *w = weight;
    long n32 = (c1 - c0) & ~31L, r = row0;
    for (; r + 4 <= row1; r += 4) {
        const unsigned short *w0 = w + r * k + c0, *w1 = w0 + k, *w2 = w1 + k, *w3 = w2 + k;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
        for (long i = 0; i < n32; i += 32) {
            fetch_ahead(w0 + i, k * 2);
            __m512 xe = _mm512_loadu_ps(xp + i), xo = _mm512_loadu_ps(xp + i + 16);
            __m512i v0 = _mm512_loadu_si512(w0 + i), v1 = _mm512_loadu_si512(w1 + i);
            __m512i v2 = _mm512_loadu_si512(w2 + i), v3 = _mm512_loadu_si512(w3 + i);
            a0 = _mm512_fmadd_ps(evens16(v0), xe, a0); b0 = _mm512_fmadd_ps(odds16(v0), xo, b0);
            a1 = _mm512_fmadd_ps(evens16(v1), xe, a1); b1 = _mm512_fmadd_ps(odds16(v1), xo, b1);
            a2 = _mm512_fmadd_ps(evens16(v2), xe, a2); b2 = _mm512_fmadd_ps(odds16(v2), xo, b2);
            a3 = _mm512_fmadd_ps(evens16(v3), xe, a3); b3 = _mm512_fmadd_ps(odds16(v3), xo, b3);
        }
        sums[r - row0] += _mm512_reduce_add_ps(_mm512_add_ps(a0, b0)) + tail(w0 + n32, 1, x + c0 + n32, 0, c1 - c0 - n32);
        sums[r + 1 - row0] += _mm512_reduce_add_ps(_mm512_add_ps(a1, b1)) + tail(w1 + n32, 1, x + c0 + n32, 0, c1 - c0 - n32);
        sums[r + 2 - row0] += _mm512_reduce_add_ps(_mm512_add_ps(a2, b2)) + tail(w2 + n32, 1, x + c0 + n32, 0, c1 - c0 - n32);
        sums[r + 3 - row0] += _mm512_reduce_add_ps(_mm512_add_ps(a3, b3)) + tail(w3 + n32, 1, x + c0 + n32, 0, c1 - c0 - n32);
    }
    for (; r < row1; r++) {
        const unsigned short *w0 = w + r * k + c0;
        __m512 a0 = _mm512_setzero_ps(), b0 = a0;
        for (long i = 0; i < n32; i += 32) {
            __m512i v0 = _mm512_loadu_si512(w0 + i);
            a0 = _mm512_fmadd_ps(evens16(v0), _mm512_loadu_ps(xp + i), a0);
            b0 = _mm512_fmadd_ps(odds16(v0), _mm512_loadu_ps(xp + i + 16), b0);
        }
        sums[r - row0] += _mm512_reduce_add_ps(_mm512_add_ps(a0, b0)) + tail(w0 + n32, 1, x + c0 + n32, 0, c1 - c0 - n32);
    }
}

// f16 columns: widened sixteen at a time against x itself (xp unused).
AVX512 static void f16_columns(const void *weight, const float *x, const float *xp, float *sums, long k,
                               long c0, long c1, long row0, long row1) {
    (void)xp;
    const unsigned short *w = weight;
    long n16 = (c1 - c0) & ~15L, r = row0;
    const float *xc = x + c0;
    for (; r + 4 <= row1; r += 4) {
        const unsigned short *w0 = w + r * k + c0, *w1 = w0 + k, *w2 = w1 + k, *w3 = w2 + k;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (long i = 0; i < n16; i += 16) {
            if ((i & 31) == 0) fetch_ahead(w0 + i, k * 2);
            __m512 xv = _mm512_loadu_ps(xc + i);
            a0 = _mm512_fmadd_ps(load16_16(w0 + i, 0), xv, a0);
            a1 = _mm512_fmadd_ps(load16_16(w1 + i, 0), xv, a1);
            a2 = _mm512_fmadd_ps(load16_16(w2 + i, 0), xv, a2);
            a3 = _mm512_fmadd_ps(load16_16(w3 + i, 0), xv, a3);
        }
        sums[r - row0] += _mm512_reduce_add_ps(a0) + tail(w0, 0, xc, n16, c1 - c0);
        sums[r + 1 - row0] += _mm512_reduce_add_ps(a1) + tail(w1, 0, xc, n16, c1 - c0);
        sums[r + 2 - row0] += _mm512_reduce_add_ps(a2) + tail(w2, 0, xc, n16, c1 - c0);
        sums[r + 3 - row0] += _mm512_reduce_add_ps(a3) + tail(w3, 0, xc, n16, c1 - c0);
    }
    for (; r < row1; r++) {
        const unsigned short *w0 = w + r * k + c0;
        __m512 a = _mm512_setzero_ps();
        for (long i = 0; i < n16; i += 16) a = _mm512_fmadd_ps(load16_16(w0 + i, 0), _mm512_loadu_ps(xc + i), a);
        sums[r - row0] += _mm512_reduce_add_ps(a) + tail(w0, 0, xc, n16, c1 - c0);
    }
}

AVX512 void lk_gemv16_avx512(const unsigned short *w, int bf16, const float *x, float *y, long k, long row0, long row1, float beta) {
    by_blocks(bf16 ? bf16_columns : f16_columns, w, bf16, x, y, k, row0, row1, beta);
}

// Rows [row0, row1) of y = W·x (+ beta·y) for an fp32 W: four rows share each load of x, and the
// next four rows are fetched ahead, as for bf16 (OpenBLAS's sgemv, threaded on its own, reached
// about 78% of the streaming rate in decode).
AVX512 void lk_gemv32_avx512(const float *w, const float *x, float *y, long k, long row0, long row1, float beta) {
    long k16 = k & ~15L, r = row0;
    for (; r + 4 <= row1; r += 4) {
        const float *w0 = w + r * k, *w1 = w0 + k, *w2 = w1 + k, *w3 = w2 + k;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (long i = 0; i < k16; i += 16) {
            fetch_ahead(w0 + i, k * 4);
            __m512 xv = _mm512_loadu_ps(x + i);
            a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w0 + i), xv, a0);
            a1 = _mm512_fmadd_ps(_mm512_loadu_ps(w1 + i), xv, a1);
            a2 = _mm512_fmadd_ps(_mm512_loadu_ps(w2 + i), xv, a2);
            a3 = _mm512_fmadd_ps(_mm512_loadu_ps(w3 + i), xv, a3);
        }
        float s[4] = { _mm512_reduce_add_ps(a0), _mm512_reduce_add_ps(a1), _mm512_reduce_add_ps(a2), _mm512_reduce_add_ps(a3) };
        for (int j = 0; j < 4; j++) {
            for (long i = k16; i < k; i++) s[j] += w0[j * k + i] * x[i];
            y[r + j] = beta == 0 ? s[j] : beta * y[r + j] + s[j];
        }
    }
    for (; r < row1; r++) {
        const float *w0 = w + r * k;
        __m512 a = _mm512_setzero_ps();
        for (long i = 0; i < k16; i += 16) a = _mm512_fmadd_ps(_mm512_loadu_ps(w0 + i), _mm512_loadu_ps(x + i), a);
        float s = _mm512_reduce_add_ps(a);
        for (long i = k16; i < k; i++) s += w0[i] * x[i];
        y[r] = beta == 0 ? s : beta * y[r] + s;
    }
}

// Columns [c0, c1) of rows [row0, row1) of an NF4 W whose rows and blocks start on multiples of
// 32 elements, added to sums[r - row0]; xp is x[c0, c1) in even_odd's layout. Each 16 bytes
// hold 32 elements, element 2j the high nibble of byte j and 2j + 1 the low: widened to 32-bit
// lanes once, the evens' codes are the lanes shifted down by 4 and the odds' the lanes as they
// are (the permute reads only each index's low four bits), so no unpacking shuffle is needed.
typedef struct {
    const unsigned char *packed;
    const float *code;
    long blockSize;
    const float *plain;
    const unsigned char *index;
    const float *map, *scales;
    float offset;
} NF4Weight;

// 32 elements (16 bytes) against xg's 16 evens and 16 odds, added into the two accumulators.
AVX512 __attribute__((always_inline)) static inline void nf4_group32(const unsigned char *bytes, const float *xg, __m512 scaled,
                                                                    __m512 *evens, __m512 *odds) {
    __m512i lanes = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)bytes));
    *evens = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(lanes, 4), scaled), _mm512_loadu_ps(xg), *evens);
    *odds = _mm512_fmadd_ps(_mm512_permutexvar_ps(lanes, scaled), _mm512_loadu_ps(xg + 16), *odds);
}

AVX512 static void nf4_columns(const void *weight, const float *x, const float *xp, float *sums, long k,
                               long c0, long c1, long row0, long row1) {
    (void)x;
    const NF4Weight *q = weight;
    const unsigned char *packed = q->packed, *index = q->index;
    const float *plain = q->plain, *map = q->map, *scales = q->scales;
    const long blockSize = q->blockSize;
    const float offset = q->offset;
    const __m512 table = _mm512_loadu_ps(q->code);
    for (long r = row0; r < row1; r++) {
        long e = r * k + c0, end = r * k + c1;
        const float *xg = xp;
        __m512 evens = _mm512_setzero_ps(), odds = evens, evens2 = evens, odds2 = evens;
        // One division per row: a 64-bit divide per 64-element block cost more than its FMAs.
        for (long b = e / blockSize, next = (b + 1) * blockSize; e < end; b++, next += blockSize) {
            long stop = next < end ? next : end;
            // The block's codes scaled once, so every group adds straight into the row's sums.
            __m512 scaled = _mm512_mul_ps(table, _mm512_set1_ps(nf4_absmax(b, plain, index, map, scales, offset)));
            for (; e + 64 <= stop; e += 64, xg += 64) {
                const unsigned char *bytes = packed + (e >> 1);
                if (((size_t)bytes & 63) < 32) _mm_prefetch((const char *)bytes + 1024, _MM_HINT_T0);
                nf4_group32(bytes, xg, scaled, &evens, &odds);
                nf4_group32(bytes + 16, xg + 32, scaled, &evens2, &odds2);
            }
            if (e < stop) {  // a last group of 32
                nf4_group32(packed + (e >> 1), xg, scaled, &evens, &odds);
                e += 32, xg += 32;
            }
        }
        sums[r - row0] += _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(evens, odds), _mm512_add_ps(evens2, odds2)));
    }
}

// nf4_columns where rows and blocks start on multiples of 64 elements (every LLaMA width and
// bitsandbytes' default block): the row's scales are looked up first, one per 64-element group,
// so the loop over groups is straight-line with a fixed shape. The same sums in the same order
// as nf4_columns, 1.0-1.4x as fast in cache (bench/results/nf4-kernel-2026-12-03.txt): its loop
// of blocks, whose inner loop ran once per block of 64, cost more than the arithmetic.
AVX512 static void nf4_columns64(const void *weight, const float *x, const float *xp, float *sums, long k,
                                 long c0, long c1, long row0, long row1) {
    (void)x;
    const NF4Weight *q = weight;
    const long groups = (c1 - c0) / 64, per = q->blockSize / 64;
    const __m512 table = _mm512_loadu_ps(q->code);
    float scale[CHUNK / 64];
    for (long r = row0; r < row1; r++) {
        // Block b's scale for each of its groups; the row may start part-way into b.
        long e = r * k + c0, b = e / q->blockSize, left = per - (e / 64) % per;
        for (long g = 0; g < groups; b++, left = per) {
            float s = nf4_absmax(b, q->plain, q->index, q->map, q->scales, q->offset);
            for (; left > 0 && g < groups; left--) scale[g++] = s;
        }
        const unsigned char *bytes = q->packed + (e >> 1);
        const float *xg = xp;
        __m512 evens = _mm512_setzero_ps(), odds = evens, evens2 = evens, odds2 = evens;
        for (long g = 0; g < groups; g++, bytes += 32, xg += 64) {
            _mm_prefetch((const char *)bytes + 1024, _MM_HINT_T0);
            __m512 scaled = _mm512_mul_ps(table, _mm512_set1_ps(scale[g]));
            nf4_group32(bytes, xg, scaled, &evens, &odds);
            nf4_group32(bytes + 16, xg + 32, scaled, &evens2, &odds2);
        }
        sums[r - row0] += _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(evens, odds), _mm512_add_ps(evens2, odds2)));
    }
}

// lk_gemv_nf4 where rows or blocks do not start on multiples of 32 elements:
// sixteen elements (eight bytes) at a time: one permute looks up all sixteen codes
// (AVX2 needs two and a blend), two accumulators so consecutive FMAs do not wait on each other.
AVX512 static void nf4_unaligned(const unsigned char *packed, const float *code, long blockSize,
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

AVX512 void lk_gemv_nf4_avx512(const unsigned char *packed, const float *code, long blockSize,
                               const float *plain, const unsigned char *index, const float *map, const float *scales, float offset,
                               const float *x, float *y, long k, long row0, long row1, float beta) {
    if (k % 32 || blockSize % 32) {
        nf4_unaligned(packed, code, blockSize, plain, index, map, scales, offset, x, y, k, row0, row1, beta);
        return;
    }
    NF4Weight q = { packed, code, blockSize, plain, index, map, scales, offset };
    by_blocks(k % 64 || blockSize % 64 ? nf4_columns : nf4_columns64, &q, 1, x, y, k, row0, row1, beta);
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

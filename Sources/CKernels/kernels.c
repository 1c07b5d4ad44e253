#include "CKernels.h"
#include <math.h>
#include <immintrin.h>
#include "simd.h"

// ---- portable versions ----------------------------------------------------------------------

static void softmax_row_portable(float *row, long valid, long width) {
    float m = -INFINITY;
    for (long j = 0; j < valid; j++) if (row[j] > m) m = row[j];
    float sum = 0;
    for (long j = 0; j < valid; j++) { row[j] = expf(row[j] - m); sum += row[j]; }
    float inv = 1.0f / sum;
    for (long j = 0; j < valid; j++) row[j] *= inv;
    for (long j = valid; j < width; j++) row[j] = 0;
}

static void swiglu_portable(const float *gate, const float *up, float *out, long begin, long end) {
    for (long i = begin; i < end; i++) { float g = gate[i]; out[i] = g / (1.0f + expf(-g)) * up[i]; }
}

static void rmsnorm_row_portable(const float *x, const float *w, float *out, long cols, float eps) {
    float sum = 0;
    for (long i = 0; i < cols; i++) sum += x[i] * x[i];
    float scale = 1.0f / sqrtf(sum / (float)cols + eps);
    for (long i = 0; i < cols; i++) out[i] = x[i] * scale * w[i];
}

// ---- AVX2 + FMA versions ----------------------------------------------------------------------

AVX2 static void softmax_row_avx2(float *row, long valid, long width) {
    long j = 0;
    __m256 vm = _mm256_set1_ps(-INFINITY);
    for (; j + 8 <= valid; j += 8) vm = _mm256_max_ps(vm, _mm256_loadu_ps(row + j));
    float m = hmax256(vm);
    for (; j < valid; j++) if (row[j] > m) m = row[j];
    __m256 shift = _mm256_set1_ps(m), vs = _mm256_setzero_ps();
    for (j = 0; j + 8 <= valid; j += 8) {
        __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(row + j), shift));
        _mm256_storeu_ps(row + j, e);
        vs = _mm256_add_ps(vs, e);
    }
    float sum = hsum256(vs);
    for (; j < valid; j++) { row[j] = expf(row[j] - m); sum += row[j]; }
    __m256 inv = _mm256_set1_ps(1.0f / sum);
    for (j = 0; j + 8 <= valid; j += 8) _mm256_storeu_ps(row + j, _mm256_mul_ps(_mm256_loadu_ps(row + j), inv));
    for (; j < valid; j++) row[j] *= 1.0f / sum;
    for (j = valid; j < width; j++) row[j] = 0;
}

AVX2 static void swiglu_avx2(const float *gate, const float *up, float *out, long begin, long end) {
    long i = begin;
    __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    for (; i + 8 <= end; i += 8) {
        __m256 g = _mm256_loadu_ps(gate + i);
        __m256 s = _mm256_div_ps(g, _mm256_add_ps(one, exp256(_mm256_sub_ps(zero, g))));
        _mm256_storeu_ps(out + i, _mm256_mul_ps(s, _mm256_loadu_ps(up + i)));
    }
    swiglu_portable(gate, up, out, i, end);
}

AVX2 static void rmsnorm_row_avx2(const float *x, const float *w, float *out, long cols, float eps) {
    long i = 0;
    __m256 acc = _mm256_setzero_ps();
    for (; i + 8 <= cols; i += 8) { __m256 v = _mm256_loadu_ps(x + i); acc = _mm256_fmadd_ps(v, v, acc); }
    float sum = hsum256(acc);
    for (; i < cols; i++) sum += x[i] * x[i];
    float scale = 1.0f / sqrtf(sum / (float)cols + eps);
    __m256 vs = _mm256_set1_ps(scale);
    for (i = 0; i + 8 <= cols; i += 8)
        _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), vs), _mm256_loadu_ps(w + i)));
    for (; i < cols; i++) out[i] = x[i] * scale * w[i];
}

// ---- dispatch ---------------------------------------------------------------------------------


void lk_softmax_causal(float *scores, long width, long row0, long row1, long valid0) {
    int fast = has_avx2();
    for (long r = row0; r < row1; r++) {
        long valid = valid0 + r < width ? valid0 + r : width;
        if (fast) softmax_row_avx2(scores + r * width, valid, width); else softmax_row_portable(scores + r * width, valid, width);
    }
}

void lk_swiglu(const float *gate, const float *up, float *out, long begin, long end) {
    if (has_avx2()) swiglu_avx2(gate, up, out, begin, end); else swiglu_portable(gate, up, out, begin, end);
}

void lk_rmsnorm(const float *x, const float *w, float *out, long cols, float eps, long row0, long row1) {
    int fast = has_avx2();
    for (long r = row0; r < row1; r++) {
        if (fast) rmsnorm_row_avx2(x + r * cols, w, out + r * cols, cols, eps);
        else rmsnorm_row_portable(x + r * cols, w, out + r * cols, cols, eps);
    }
}

void lk_rope(float *x, long stride, long heads, long headDim, const float *table, long row0, long row1) {
    long half = headDim / 2;
    for (long t = row0; t < row1; t++) {
        const float *c = table + t * headDim, *s = c + half;
        for (long h = 0; h < heads; h++) {
            float *v = x + t * stride + h * headDim;
            for (long j = 0; j < half; j++) {
                float a = v[j], b = v[j + half];
                v[j] = a * c[j] - b * s[j];
                v[j + half] = b * c[j] + a * s[j];
            }
        }
    }
}

// ---- training kernels ---------------------------------------------------------------------------

static float cross_entropy_portable(float *row, long v, long target, float scale) {
    float m = -INFINITY;
    for (long j = 0; j < v; j++) if (row[j] > m) m = row[j];
    double sum = 0;
    for (long j = 0; j < v; j++) sum += exp((double)(row[j] - m));
    float loss = (float)(log(sum) + m - row[target]);
    if (scale != 0) {
        float inv = (float)(1.0 / sum) * scale;
        for (long j = 0; j < v; j++) row[j] = expf(row[j] - m) * inv;
        row[target] -= scale;
    }
    return loss;
}

AVX2 static float cross_entropy_avx2(float *row, long v, long target, float scale) {
    long j = 0;
    __m256 vm = _mm256_set1_ps(-INFINITY);
    for (; j + 8 <= v; j += 8) vm = _mm256_max_ps(vm, _mm256_loadu_ps(row + j));
    float m = hmax256(vm);
    for (; j < v; j++) if (row[j] > m) m = row[j];
    float picked = row[target];
    __m256 shift = _mm256_set1_ps(m), vs = _mm256_setzero_ps();
    // Exponentials stay in the row when a gradient is wanted, so they are computed once.
    for (j = 0; j + 8 <= v; j += 8) {
        __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(row + j), shift));
        if (scale != 0) _mm256_storeu_ps(row + j, e);
        vs = _mm256_add_ps(vs, e);
    }
    double sum = hsum256(vs);
    for (; j < v; j++) { float e = expf(row[j] - m); if (scale != 0) row[j] = e; sum += e; }
    float loss = (float)(log(sum) + m - picked);
    if (scale != 0) {
        __m256 inv = _mm256_set1_ps((float)(1.0 / sum) * scale);
        for (j = 0; j + 8 <= v; j += 8) _mm256_storeu_ps(row + j, _mm256_mul_ps(_mm256_loadu_ps(row + j), inv));
        for (; j < v; j++) row[j] *= (float)(1.0 / sum) * scale;
        row[target] -= scale;
    }
    return loss;
}

float lk_cross_entropy_row(float *row, long v, long target, float scale) {
    return has_avx2() ? cross_entropy_avx2(row, v, target, scale) : cross_entropy_portable(row, v, target, scale);
}

static void swiglu_backward_portable(const float *dout, const float *gate, const float *up, float *dgate, float *dup, long begin, long end) {
    for (long i = begin; i < end; i++) {
        float g = gate[i], s = 1.0f / (1.0f + expf(-g)), d = dout[i];
        dup[i] = d * g * s;
        dgate[i] = d * up[i] * s * (1.0f + g * (1.0f - s));
    }
}

AVX2 static void swiglu_backward_avx2(const float *dout, const float *gate, const float *up, float *dgate, float *dup, long begin, long end) {
    long i = begin;
    __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    for (; i + 8 <= end; i += 8) {
        __m256 g = _mm256_loadu_ps(gate + i), d = _mm256_loadu_ps(dout + i);
        __m256 s = _mm256_div_ps(one, _mm256_add_ps(one, exp256(_mm256_sub_ps(zero, g))));
        _mm256_storeu_ps(dup + i, _mm256_mul_ps(_mm256_mul_ps(d, g), s));
        __m256 ds = _mm256_mul_ps(s, _mm256_fmadd_ps(g, _mm256_sub_ps(one, s), one));
        _mm256_storeu_ps(dgate + i, _mm256_mul_ps(_mm256_mul_ps(d, _mm256_loadu_ps(up + i)), ds));
    }
    swiglu_backward_portable(dout, gate, up, dgate, dup, i, end);
}

void lk_swiglu_backward(const float *dout, const float *gate, const float *up, float *dgate, float *dup, long begin, long end) {
    if (has_avx2()) swiglu_backward_avx2(dout, gate, up, dgate, dup, begin, end);
    else swiglu_backward_portable(dout, gate, up, dgate, dup, begin, end);
}

void lk_rmsnorm_backward(const float *dy, const float *x, const float *w, const float *inverse, float *dx,
                         long cols, long row0, long row1) {
    for (long t = row0; t < row1; t++) {
        const float *g = dy + t * cols, *xr = x + t * cols;
        float *out = dx + t * cols;
        float r = inverse[t], dot = 0;
        for (long i = 0; i < cols; i++) dot += xr[i] * g[i] * w[i];
        float coefficient = r * r * r * dot / (float)cols;
        for (long i = 0; i < cols; i++) out[i] += r * g[i] * w[i] - coefficient * xr[i];
    }
}

void lk_softmax_backward_causal(const float *p, float *d, long s, long row0, long row1) {
    for (long r = row0; r < row1; r++) {
        const float *pr = p + (r - row0) * s;
        float *dr = d + (r - row0) * s, dot = 0;
        for (long j = 0; j <= r; j++) dot += pr[j] * dr[j];
        for (long j = 0; j <= r; j++) dr[j] = pr[j] * (dr[j] - dot);
        for (long j = r + 1; j < s; j++) dr[j] = 0;
    }
}

// ---- 16-bit weights read where they lie -------------------------------------------------------

static inline float bf16_to_f32(unsigned short bits) {
    union { unsigned int u; float f; } v = { (unsigned int)bits << 16 };
    return v.f;
}

static void gemv16_portable(const unsigned short *w, int bf16, const float *x, float *y, long k, long row0, long row1, float beta) {
    for (long r = row0; r < row1; r++) {
        const unsigned short *row = w + r * k;
        float sum = 0;
        if (bf16) for (long i = 0; i < k; i++) sum += bf16_to_f32(row[i]) * x[i];
        else for (long i = 0; i < k; i++) sum += (float)((const _Float16 *)row)[i] * x[i];
        y[r] = beta == 0 ? sum : beta * y[r] + sum;
    }
}

#define AVX2F16C __attribute__((target("avx2,fma,f16c")))

AVX2F16C static inline __m256 load8_16(const unsigned short *p, int bf16) {
    __m128i h = _mm_loadu_si128((const __m128i *)p);
    if (bf16) return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    return _mm256_cvtph_ps(h);
}

AVX2F16C static inline float hsum256_f16c(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AVX2F16C static void gemv16_avx2(const unsigned short *w, int bf16, const float *x, float *y, long k, long row0, long row1, float beta) {
    for (long r = row0; r < row1; r++) {
        const unsigned short *row = w + r * k;
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
        long i = 0;
        for (; i + 32 <= k; i += 32) {
            _mm_prefetch((const char *)(row + i) + 1024, _MM_HINT_T0);  // see avx512.c's fetch_ahead
            a0 = _mm256_fmadd_ps(load8_16(row + i, bf16), _mm256_loadu_ps(x + i), a0);
            a1 = _mm256_fmadd_ps(load8_16(row + i + 8, bf16), _mm256_loadu_ps(x + i + 8), a1);
            a2 = _mm256_fmadd_ps(load8_16(row + i + 16, bf16), _mm256_loadu_ps(x + i + 16), a2);
            a3 = _mm256_fmadd_ps(load8_16(row + i + 24, bf16), _mm256_loadu_ps(x + i + 24), a3);
        }
        for (; i + 8 <= k; i += 8) a0 = _mm256_fmadd_ps(load8_16(row + i, bf16), _mm256_loadu_ps(x + i), a0);
        float sum = hsum256_f16c(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
        for (; i < k; i++) sum += (bf16 ? bf16_to_f32(row[i]) : (float)((const _Float16 *)row)[i]) * x[i];
        y[r] = beta == 0 ? sum : beta * y[r] + sum;
    }
}

static int has_f16c(void) {
    static int cached = -1;
    if (cached < 0) { __builtin_cpu_init(); cached = has_avx2() && __builtin_cpu_supports("f16c"); }
    return cached;
}

int lk_gemv32_available(void) { return lk_has_avx512(); }

void lk_gemv32(const float *w, const float *x, float *y, long k, long row0, long row1, float beta) {
    if (lk_has_avx512()) { lk_gemv32_avx512(w, x, y, k, row0, row1, beta); return; }
    for (long r = row0; r < row1; r++) {
        float s = 0;
        for (long i = 0; i < k; i++) s += w[r * k + i] * x[i];
        y[r] = beta == 0 ? s : beta * y[r] + s;
    }
}

void lk_gemv16(const unsigned short *w, int bf16, const float *x, float *y, long k, long row0, long row1, float beta) {
    if (lk_has_avx512()) lk_gemv16_avx512(w, bf16, x, y, k, row0, row1, beta);
    else if (has_f16c()) gemv16_avx2(w, bf16, x, y, k, row0, row1, beta);
    else gemv16_portable(w, bf16, x, y, k, row0, row1, beta);
}

AVX2F16C static void widen16_avx2(const unsigned short *src, int bf16, float *dst, long begin, long end) {
    long i = begin;
    for (; i + 8 <= end; i += 8) _mm256_storeu_ps(dst + i, load8_16(src + i, bf16));
    for (; i < end; i++) dst[i] = bf16 ? bf16_to_f32(src[i]) : (float)((const _Float16 *)src)[i];
}

void lk_widen16(const unsigned short *src, int bf16, float *dst, long begin, long end) {
    if (has_f16c()) { widen16_avx2(src, bf16, dst, begin, end); return; }
    for (long i = begin; i < end; i++) dst[i] = bf16 ? bf16_to_f32(src[i]) : (float)((const _Float16 *)src)[i];
}

void lk_narrow_bf16(const float *src, unsigned short *dst, long begin, long end) {
    for (long i = begin; i < end; i++) dst[i] = narrow_bf16(src[i]);
}

// ---- NF4 weights read where they lie ------------------------------------------------------------

static void gemv_nf4_portable(const unsigned char *packed, const float *code, long blockSize,
                              const float *plain, const unsigned char *index, const float *map, const float *scales, float offset,
                              const float *x, float *y, long k, long row0, long row1, float beta) {
    for (long r = row0; r < row1; r++) {
        long e0 = r * k, e = e0, end = e0 + k;
        float sum = 0;
        while (e < end) {
            long b = e / blockSize, stop = (b + 1) * blockSize < end ? (b + 1) * blockSize : end;
            float part = 0;
            for (; e < stop; e++) part += code[nf4_nibble(packed, e)] * x[e - e0];
            sum += part * nf4_absmax(b, plain, index, map, scales, offset);
        }
        y[r] = beta == 0 ? sum : beta * y[r] + sum;
    }
}

AVX2 static void gemv_nf4_avx2(const unsigned char *packed, const float *code, long blockSize,
                               const float *plain, const unsigned char *index, const float *map, const float *scales, float offset,
                               const float *x, float *y, long k, long row0, long row1, float beta) {
    __m256 low = _mm256_loadu_ps(code), high = _mm256_loadu_ps(code + 8);
    const __m128i pairs = _mm_setr_epi8(0, 0, 1, 1, 2, 2, 3, 3, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m256i shifts = _mm256_setr_epi32(4, 0, 4, 0, 4, 0, 4, 0), fifteen = _mm256_set1_epi32(15);
    for (long r = row0; r < row1; r++) {
        long e0 = r * k, e = e0, end = e0 + k;
        __m256 total = _mm256_setzero_ps();
        float tail = 0;
        while (e < end) {
            long b = e / blockSize, stop = (b + 1) * blockSize < end ? (b + 1) * blockSize : end;
            float scale = nf4_absmax(b, plain, index, map, scales, offset), part = 0;
            // Scalar until an even element (a byte boundary), then 8 elements (4 bytes) at a time.
            if (e & 1 && e < stop) { part += code[nf4_nibble(packed, e)] * x[e - e0]; e++; }
            __m256 acc = _mm256_setzero_ps();
            for (; e + 8 <= stop; e += 8) {
                int four;
                __builtin_memcpy(&four, packed + (e >> 1), 4);
                __m256i idx = _mm256_cvtepu8_epi32(_mm_shuffle_epi8(_mm_cvtsi32_si128(four), pairs));
                idx = _mm256_and_si256(_mm256_srlv_epi32(idx, shifts), fifteen);
                __m256 w = _mm256_blendv_ps(_mm256_permutevar8x32_ps(low, idx), _mm256_permutevar8x32_ps(high, idx),
                                            _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28)));
                acc = _mm256_fmadd_ps(w, _mm256_loadu_ps(x + (e - e0)), acc);
            }
            for (; e < stop; e++) part += code[nf4_nibble(packed, e)] * x[e - e0];
            total = _mm256_fmadd_ps(acc, _mm256_set1_ps(scale), total);
            tail += part * scale;
        }
        float sum = hsum256(total) + tail;
        y[r] = beta == 0 ? sum : beta * y[r] + sum;
    }
}

void lk_gemv_nf4(const unsigned char *packed, const float *code, long blockSize,
                 const float *plain, const unsigned char *index, const float *map, const float *scales, float offset,
                 const float *x, float *y, long k, long row0, long row1, float beta) {
    if (lk_has_avx512()) lk_gemv_nf4_avx512(packed, code, blockSize, plain, index, map, scales, offset, x, y, k, row0, row1, beta);
    else if (has_avx2()) gemv_nf4_avx2(packed, code, blockSize, plain, index, map, scales, offset, x, y, k, row0, row1, beta);
    else gemv_nf4_portable(packed, code, blockSize, plain, index, map, scales, offset, x, y, k, row0, row1, beta);
}

#include "CKernels.h"
#include "simd.h"
#include <immintrin.h>
#include <cpuid.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>

// Matrix products on Intel AMX in bf16 with fp32 accumulation, for `matmulDtype: "bf16"`: one
// TDPBF16PS multiplies a 16×32 bf16 tile by a 32×16 one into 16×16 fp32 sums, about ten times
// what fp32 FMAs give on the same core. The activations are rounded to bf16 once per call; the
// weight is packed a 32-column panel at a time into the tiles' pair-interleaved layout.

#define AMX __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,amx-tile,amx-bf16")))
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18
#define PANEL 32         // output columns per packed weight panel: two 16-column tiles
#define CHUNK_BYTES (1L << 20)  // bf16 activations converted at a time: kept in L2
#define DEPTH 1024L      // depth of one pass: a packed panel is at most 64 KB

typedef struct {
    unsigned char palette, start;
    unsigned char reserved[14];
    unsigned short colsb[16];
    unsigned char rows[16];
} __attribute__((packed)) TileConfig;

static unsigned long long xcr0(void) {
    unsigned int lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}

// The CPU has AMX-BF16 and AVX512-BF16, the OS saves their state, and the kernel granted this
// process the tile data (Linux asks for it once: ARCH_REQ_XCOMP_PERM). LORAMD_NO_AMX=1 turns it off.
static int probe(void) {
    const char *off = getenv("LORAMD_NO_AMX");
    if (off && *off && strcmp(off, "0") != 0) return 0;
    unsigned int a, b, c, d;
    if (!__get_cpuid_count(1, 0, &a, &b, &c, &d) || !(c & (1u << 27))) return 0;  // OSXSAVE
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    int tile = (d >> 24) & 1, amxbf16 = (d >> 22) & 1, f = (b >> 16) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1;
    if (!__get_cpuid_count(7, 1, &a, &b, &c, &d)) return 0;
    int bf16 = (a >> 5) & 1;
    if (!(tile && amxbf16 && f && bw && vl && bf16)) return 0;
    unsigned long long need = (1ull << 1) | (1ull << 2) | (7ull << 5) | (3ull << 17);  // SSE, AVX, AVX-512, tiles
    if ((xcr0() & need) != need) return 0;
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
}

int lk_amx_available(void) {
    static atomic_int state = -1;  // probing twice at once gives the same answer
    int s = atomic_load(&state);
    if (s < 0) { s = probe(); atomic_store(&state, s); }
    return s;
}

// A buffer of this thread's that grows to `bytes` (64-byte aligned) and is kept for later calls,
// at most the 1 MB chunk plus a 64 KB panel per part. NULL if allocation fails.
static void *thread_buffer(void **buffer, size_t *capacity, size_t bytes) {
    if (*capacity >= bytes) return *buffer;
    void *grown = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!grown) return NULL;
    free(*buffer);
    *buffer = grown;
    *capacity = bytes;
    return grown;
}

typedef struct {
    const float *a; long lda;           // activations (m, k), fp32
    const void *w; int wbf16; long ldw; int transposed;
    long m, n, k, kpad;                 // kpad: k rounded up to 32
    float *c; long ldc; float beta;
    unsigned short *chunk;              // bf16 rows [row0, row0 + rows) of a, kpad apart, zero padded
    unsigned short *panels0;            // one packed panel (kpad × 32) per part
    long row0, rows;                    // rows: a multiple of 32
    atomic_long next;                   // next panel (or row group) to take
    long panels;
} Product;

// Rows of the current chunk in groups of 32, rounded to bf16 (zeros past m and past k).
AMX static void convert_rows(void *context, long part) {
    Product *p = context;
    (void)part;
    for (long g; (g = atomic_fetch_add(&p->next, 1)) < p->rows / 32;) {
        for (long i = g * 32; i < g * 32 + 32; i++) {
            unsigned short *dst = p->chunk + i * p->kpad;
            long r = p->row0 + i;
            if (r >= p->m) { memset(dst, 0, (size_t)p->kpad * 2); continue; }
            const float *src = p->a + r * p->lda;
            long j = 0;
            for (; j + 32 <= p->k; j += 32) {
                __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + j + 16), _mm512_loadu_ps(src + j));
                _mm512_storeu_si512((void *)(dst + j), (__m512i)v);
            }
            for (; j < p->k; j++) dst[j] = narrow_bf16(src[j]);
            for (; j < p->kpad; j++) dst[j] = 0;
        }
    }
}

// 16 rows of 16 32-bit elements transposed in registers: in-lane 4×4 transposes (unpacks), then
// the 128-bit lanes regrouped.
AMX static inline void transpose16(__m512i r[16]) {
    __m512i t[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {  // r[4i + q], lane l: column 4l + q of rows 4i..4i+3
        r[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        r[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        r[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        r[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    for (int q = 0; q < 4; q++) {
        __m512i alo = _mm512_shuffle_i32x4(r[q], r[4 + q], 0x44), ahi = _mm512_shuffle_i32x4(r[q], r[4 + q], 0xee);
        __m512i blo = _mm512_shuffle_i32x4(r[8 + q], r[12 + q], 0x44), bhi = _mm512_shuffle_i32x4(r[8 + q], r[12 + q], 0xee);
        t[q] = _mm512_shuffle_i32x4(alo, blo, 0x88);
        t[4 + q] = _mm512_shuffle_i32x4(alo, blo, 0xdd);
        t[8 + q] = _mm512_shuffle_i32x4(ahi, bhi, 0x88);
        t[12 + q] = _mm512_shuffle_i32x4(ahi, bhi, 0xdd);
    }
    for (int i = 0; i < 16; i++) r[i] = t[i];
}

// Depth pair e/2 of row `row` of w (n, k) as (even, odd) bf16 in 32 bits; zero past k.
static inline unsigned int pair_of(const Product *p, long row, long e) {
    if (p->wbf16) {
        const unsigned short *w = (const unsigned short *)p->w + row * p->ldw;
        return w[e] | (e + 1 < p->k ? (unsigned int)w[e + 1] << 16 : 0);
    }
    const float *w = (const float *)p->w + row * p->ldw;
    return narrow_bf16(w[e]) | (e + 1 < p->k ? (unsigned int)narrow_bf16(w[e + 1]) << 16 : 0);
}

// The weight's columns [n0, n0 + 32) of op(w) packed for the B tiles: per 32-deep step s and
// 16-column tile t, 16 rows (pairs of depth) of 16 columns × 2 bf16, i.e. element (depth e,
// column j) at ((s·2 + t)·16 + (e % 32) / 2)·32 + (j % 16)·2 + e % 2. Zeros past n and past k.
AMX static void pack_panel(const Product *p, long n0, unsigned short *panel) {
    long steps = p->kpad / 32, cols = p->n - n0 < PANEL ? p->n - n0 : PANEL;
    unsigned int *pairs = (unsigned int *)panel;  // one (even, odd) depth pair per 32 bits
    if (p->transposed) {  // op(w) = wᵀ: w (n, k), column j of op(w) is row n0 + j of w
        for (long s = 0; s < steps; s++) {
            for (long t = 0; t < 2; t++) {
                unsigned int *dst = pairs + (s * 2 + t) * 256;
                long width = cols - t * 16;
                if (width >= 16 && s * 32 + 32 <= p->k) {  // a whole 16 × 32 block: transposed in registers
                    __m512i r[16];
                    for (int j = 0; j < 16; j++) {
                        long row = n0 + t * 16 + j;
                        if (p->wbf16) r[j] = _mm512_loadu_si512((const void *)((const unsigned short *)p->w + row * p->ldw + s * 32));
                        else {
                            const float *w = (const float *)p->w + row * p->ldw + s * 32;
                            r[j] = (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(w + 16), _mm512_loadu_ps(w));
                        }
                    }
                    transpose16(r);
                    for (int i = 0; i < 16; i++) _mm512_storeu_si512((void *)(dst + i * 16), r[i]);
                    continue;
                }
                for (long i = 0; i < 16; i++)
                    for (long j = 0; j < 16; j++) {
                        long e = s * 32 + 2 * i;
                        dst[i * 16 + j] = j < width && e < p->k ? pair_of(p, n0 + t * 16 + j, e) : 0;
                    }
            }
        }
        return;
    }
    // The loop below writes every pair of depth under k of every tile under n: zeros first only
    // for a panel with depth past k or a tile past n.
    if (p->k < p->kpad || cols <= 16) memset(panel, 0, (size_t)steps * 2 * 16 * 32 * 2);
    // op(w) = w: w (k, n), depth e is row e of w; two rows interleave into one tile row.
    for (long e = 0; e < p->k; e += 2) {
        unsigned int *dst0 = pairs + ((e / 32 * 2) * 16 + (e % 32) / 2) * 16;
        for (long t = 0; t * 16 < cols; t++) {
            unsigned int *dst = dst0 + t * 16 * 16;
            long width = cols - t * 16 < 16 ? cols - t * 16 : 16;
            __mmask16 mask = (__mmask16)((1u << width) - 1);
            __m512i lo, hi;
            if (p->wbf16) {
                const unsigned short *r0 = (const unsigned short *)p->w + e * p->ldw + n0 + t * 16;
                lo = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mask, r0));
                hi = e + 1 < p->k ? _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mask, r0 + p->ldw)) : _mm512_setzero_si512();
            } else {
                const float *r0 = (const float *)p->w + e * p->ldw + n0 + t * 16;
                lo = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(mask, r0)));
                hi = e + 1 < p->k ? _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(mask, r0 + p->ldw)))
                                  : _mm512_setzero_si512();
            }
            _mm512_storeu_si512((void *)dst, _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
        }
    }
}

// c[rows, cols] = block (32×32 sums, 32 apart) + beta·c, within bounds: the blocks at c's edges.
static void store_block(const Product *p, const float *block, long r0, long c0) {
    long rows = p->m - r0 < 32 ? p->m - r0 : 32, cols = p->n - c0 < 32 ? p->n - c0 : 32;
    for (long i = 0; i < rows; i++) {
        float *out = p->c + (r0 + i) * p->ldc + c0;
        const float *in = block + i * 32;
        if (p->beta == 0) for (long j = 0; j < cols; j++) out[j] = in[j];
        else for (long j = 0; j < cols; j++) out[j] = in[j] + p->beta * out[j];
    }
}

// One thread's share: panels taken one at a time, each packed, then swept by every 32-row block
// of the chunk: four 16×16 sums (tiles 0-3) from two A tiles (4, 5) and two B tiles (6, 7).
AMX static void multiply_panels(void *context, long part) {
    Product *p = context;
    unsigned short *panel = p->panels0 + part * p->kpad * PANEL;
    TileConfig config = { .palette = 1 };
    for (int t = 0; t < 8; t++) { config.rows[t] = 16; config.colsb[t] = 64; }
    _tile_loadconfig(&config);
    float block[32 * 32] __attribute__((aligned(64)));
    long steps = p->kpad / 32, stride = p->kpad * 2;
    for (long q; (q = atomic_fetch_add(&p->next, 1)) < p->panels;) {
        long n0 = q * PANEL;
        pack_panel(p, n0, panel);
        for (long i = 0; i < p->rows && p->row0 + i < p->m; i += 32) {
            const unsigned short *a = p->chunk + i * p->kpad;
            long r0 = p->row0 + i;
            // A whole 32 × 32 block of c with beta 0 or 1 goes straight between c and the tiles.
            int direct = r0 + 32 <= p->m && n0 + 32 <= p->n && (p->beta == 0 || p->beta == 1);
            float *c = p->c + r0 * p->ldc + n0;
            long ldc = p->ldc * 4;
            if (direct && p->beta == 1) {
                _tile_loadd(0, c, ldc); _tile_loadd(1, c + 16, ldc);
                _tile_loadd(2, c + 16 * p->ldc, ldc); _tile_loadd(3, c + 16 * p->ldc + 16, ldc);
            } else {
                _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
            }
            for (long s = 0; s < steps; s++) {
                _tile_loadd(4, a + s * 32, stride);
                _tile_loadd(5, a + 16 * p->kpad + s * 32, stride);
                _tile_loadd(6, panel + (s * 2) * 512, 64);
                _tile_loadd(7, panel + (s * 2 + 1) * 512, 64);
                _tile_dpbf16ps(0, 4, 6);
                _tile_dpbf16ps(1, 4, 7);
                _tile_dpbf16ps(2, 5, 6);
                _tile_dpbf16ps(3, 5, 7);
            }
            if (direct) {
                _tile_stored(0, c, ldc); _tile_stored(1, c + 16, ldc);
                _tile_stored(2, c + 16 * p->ldc, ldc); _tile_stored(3, c + 16 * p->ldc + 16, ldc);
                continue;
            }
            _tile_stored(0, block, 128);
            _tile_stored(1, block + 16, 128);
            _tile_stored(2, block + 16 * 32, 128);
            _tile_stored(3, block + 16 * 32 + 16, 128);
            store_block(p, block, r0, n0);
        }
    }
    _tile_release();  // back to the init state: context switches stop saving 8 KB of tiles
}

int lk_gemm_bf16(const float *a, long lda, long m, long k, const void *w, int wbf16, long ldw, int transposed,
                 long n, float *c, long ldc, float beta, int threads) {
    if (m <= 0 || n <= 0) return 0;
    if (!lk_amx_available() || k <= 0) return -1;
    // Passes over at most DEPTH of the depth each (the first applies beta, the rest add), so a
    // packed panel stays in L2 whatever k is (lm_head's input gradient sums over the vocabulary).
    long passes = (k + DEPTH - 1) / DEPTH, depth = ((k + passes - 1) / passes + 31) / 32 * 32;
    // Rows in chunks of at most CHUNK_BYTES, evened out: each chunk packs every panel again.
    long most = CHUNK_BYTES / (depth * 2) / 32 * 32, mpad = (m + 31) / 32 * 32;
    long chunks = (mpad + most - 1) / most, rows = ((mpad + chunks - 1) / chunks + 31) / 32 * 32;
    long panels = (n + PANEL - 1) / PANEL, parts = threads < 1 ? 1 : threads < panels ? threads : panels;
    // The caller's buffer holds the converted chunk and one panel per part, made before any work,
    // so a failed allocation changes nothing (the caller then takes OpenBLAS's sgemm).
    static __thread void *buffer;
    static __thread size_t capacity;
    unsigned short *chunk = thread_buffer(&buffer, &capacity, (size_t)(rows + parts * PANEL) * depth * 2);
    if (!chunk) return -1;
    long size = wbf16 ? 2 : 4;
    for (long k0 = 0; k0 < k; k0 += depth) {
        long kk = k - k0 < depth ? k - k0 : depth;
        const char *wk = (const char *)w + (transposed ? k0 : k0 * ldw) * size;
        Product p = { a + k0, lda, wk, wbf16, ldw, transposed, m, n, kk, (kk + 31) / 32 * 32, c, ldc, k0 == 0 ? beta : 1,
                      chunk, chunk + rows * depth, 0, rows, 0, panels };
        for (long row0 = 0; row0 < m; row0 += rows) {
            p.row0 = row0;
            atomic_store(&p.next, 0);
            lk_parallel(parts, convert_rows, &p);
            atomic_store(&p.next, 0);
            lk_parallel(parts, multiply_panels, &p);
        }
    }
    return 0;
}

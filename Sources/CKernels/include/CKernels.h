// Elementwise kernels of the forward pass, in C so they compile to AVX2/FMA code where the CPU
// has it (chosen at run time; a portable version runs elsewhere). Shapes are in the comments;
// every pointer is to fp32, row-major.
#ifndef LORAMD_CKERNELS_H
#define LORAMD_CKERNELS_H

#include <stddef.h>

// Rows [row0, row1) of scores (rows, width): row r keeps its first valid0 + r entries,
// softmaxed; the rest become 0.
void lk_softmax_causal(float *scores, long width, long row0, long row1, long valid0);

// out[i] = silu(gate[i]) * up[i] for i in [begin, end). out may alias gate.
void lk_swiglu(const float *gate, const float *up, float *out, long begin, long end);

// Rows [row0, row1) of x (rows, cols): out = x / sqrt(mean(x^2) + eps) * w. out may alias x.
void lk_rmsnorm(const float *x, const float *w, float *out, long cols, float eps, long row0, long row1);

// Rows [row0, row1) of x (tokens, heads*headDim, rows `stride` apart), rotated in the
// rotate-half layout with table (tokens, headDim) = cos | sin per token.
void lk_rope(float *x, long stride, long heads, long headDim, const float *table, long row0, long row1);

// Cross-entropy of one row of logits (width v) against `target`: returns the loss
// log(sum(exp(x))) - x[target]; with `scale` != 0 also overwrites the row with its gradient
// scale * (softmax(x) - onehot(target)).
float lk_cross_entropy_row(float *row, long v, long target, float scale);

// The backward of out = silu(gate) * up, for i in [begin, end):
// dgate[i] = dout[i] * up[i] * silu'(gate[i]); dup[i] = dout[i] * silu(gate[i]).
void lk_swiglu_backward(const float *dout, const float *gate, const float *up, float *dgate, float *dup, long begin, long end);

// Rows [row0, row1) of the RMSNorm backward (x, dy, dx: rows of cols; inverse: 1/rms per row):
// dx += r*(dy*w) - x*r^3*mean(x*dy*w).
void lk_rmsnorm_backward(const float *dy, const float *x, const float *w, const float *inverse, float *dx,
                         long cols, long row0, long row1);

// Rows [row0, row1) of a causal softmax backward on rows of width s: with p the probabilities and
// d the upstream gradient (overwritten), row r: d = p * (d - sum_j<=r p*d), 0 past r. p and d
// point at row row0 (rows s apart): a causal block of rows, stored on its own.
void lk_softmax_backward_causal(const float *p, float *d, long s, long row0, long row1);

// Rows [row0, row1) of y = W·x (+ beta·y) for a 16-bit W (rows of k; bf16 when `bf16`, else
// IEEE f16), read as it lies: no widened copy of the weight.
void lk_gemv16(const unsigned short *w, int bf16, const float *x, float *y, long k, long row0, long row1, float beta);

// Rows [row0, row1) of y = W·x (+ beta·y) for an fp32 W (rows of k). lk_gemv32_available() says
// whether it has a kernel for this CPU (AVX-512); without one OpenBLAS's sgemv is the better
// choice, and lk_gemv32 is a plain loop.
int lk_gemv32_available(void);
void lk_gemv32(const float *w, const float *x, float *y, long k, long row0, long row1, float beta);

// dst[i] = src[i] widened to fp32 for i in [begin, end) (bf16 when `bf16`, else IEEE f16).
void lk_widen16(const unsigned short *src, int bf16, float *dst, long begin, long end);

// dst[i] = src[i] narrowed to bf16, rounded to nearest even (NaN stays a quiet NaN), for i in
// [begin, end): what PyTorch's .to(torch.bfloat16) gives; lk_widen16 undoes it exactly.
void lk_narrow_bf16(const float *src, unsigned short *dst, long begin, long end);

// Rows [row0, row1) of y = W·x (+ beta·y) for an NF4 W (rows of k elements, row-major, flat
// blocks of blockSize): element e is code[nibble e] · absmax(e / blockSize), the nibble the high
// half of packed[e/2] for even e. absmax is plain[b] when `plain` is given, else
// map[index[b]] · scales[b / 256] + offset (double quantization). Read as it lies, never widened.
void lk_gemv_nf4(const unsigned char *packed, const float *code, long blockSize,
                 const float *plain, const unsigned char *index, const float *map, const float *scales, float offset,
                 const float *x, float *y, long k, long row0, long row1, float beta);

// Decode attention for one query row and one head: scores[j] = scale·q·keys[j] for j < visible,
// softmaxed in place, then out = Σ_j scores[j]·values[j]. keys and values: (visible, d) rows.
void lk_attend_one(const float *q, const float *keys, const float *values, long d, long visible,
                   float scale, float *scores, float *out);

// c (m, n) = a (m, k) · op(w) + beta·c in bf16 on Intel AMX, sums in fp32: a is rounded to bf16
// (nearest even), and so is w when fp32 (`wbf16` 0; else w is bf16). op(w) = wᵀ for w (n, k) when
// `transposed` (a linear's forward), else w (k, n) (its input gradient); rows of a, w and c are lda,
// ldw and ldc elements apart. Runs on up to `threads` compute threads. Returns 0 when done, -1
// when it did nothing: no AMX here (lk_amx_available() is 0), k < 1, or no memory for its buffers.
int lk_amx_available(void);
int lk_gemm_bf16(const float *a, long lda, long m, long k, const void *w, int wbf16, long ldw, int transposed,
                 long n, float *c, long ldc, float beta, int threads);

// Runs fn(context, part) for every part in [0, parts), spread over the compute threads: the
// caller and up to parts - 1 pool workers, which spin briefly between regions. A region started
// while another runs (nested, or from another thread) runs on its caller alone.
typedef void (*lk_part_fn)(void *context, long part);
void lk_parallel(long parts, lk_part_fn fn, void *context);

#endif

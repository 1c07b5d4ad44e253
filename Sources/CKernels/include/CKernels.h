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

#endif

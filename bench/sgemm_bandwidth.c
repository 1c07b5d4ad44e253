/*
 * sgemm_bandwidth.c: the machine's ceilings for bench/runtime.py, measured with the same OpenBLAS
 * that loramd links (Debian's libopenblas) at a given thread count.
 *
 *   (a) sgemm GFLOP/s on a LLaMA model's prefill shapes: C[M,N] = X[M,K] · W[N,K]ᵀ, row-major,
 *       M = --tokens (512), for every weight matrix of one decoder layer (q, k, v, o, gate, up,
 *       down), run in layer order over --layers distinct copies (as a real forward does);
 *       FLOP = 2·M·N·K summed over the matrices. The lm_head shape is measured and reported apart.
 *   (b) sgemv GFLOP/s for one token: y = W·x over every weight matrix of the whole model
 *       (all layers, distinct buffers, plus lm_head), i.e. the matrix-vector work of one decode
 *       step, streaming the weights from memory as decode does. Also the same with cblas_sgemm
 *       at M = 1, and both on one cache-resident matrix of each shape (where OpenBLAS's M = 1
 *       sgemm overhead shows most).
 *   (c) memory read bandwidth, GB/s (1e9 bytes/s): a streaming float sum over a --bw-mib buffer
 *       (default 1 GiB, far beyond the caches) split over --threads pthreads: the median of
 *       --bw-reps passes ("GBps"; the best pass is "GBpsBest"). Also with 1 thread.
 *       On a VM the N-thread figure moves with where the vCPUs land (seen here: 2 threads gave
 *       ~44 GB/s for a while, then ~80), so the median, and a re-measurement per round.
 *
 * --bandwidth-only measures (c) at N threads and nothing else (bench/runtime.py repeats it
 * between rounds). The sgemm and sgemv figures are the best of --reps timed runs after one
 * warm-up (200 for the cache-resident single matrices). Output: one JSON object.
 *
 * Build: gcc -O2 -march=native bench/sgemm_bandwidth.c -lopenblas -lpthread -o /tmp/sgemm_bandwidth
 * (bench/runtime.py builds it; -march=native is optional, the sum is bandwidth-bound either way).
 */
#define _GNU_SOURCE
#include <cblas.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void openblas_set_num_threads(int);
int openblas_get_num_threads(void);
char *openblas_get_config(void);
char *openblas_get_corename(void);

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static float *alloc_floats(size_t n, float scale, unsigned seed) {
    float *p = NULL;
    if (posix_memalign((void **)&p, 64, n * sizeof(float)) != 0 || !p) {
        fprintf(stderr, "sgemm_bandwidth: out of memory (%zu floats)\n", n);
        exit(1);
    }
    uint32_t s = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {  /* touches every page: no first-touch faults while timing */
        s = s * 1664525u + 1013904223u;
        p[i] = scale * ((float)(s >> 8) / 16777216.0f - 0.5f);
    }
    return p;
}

/* ---- model shapes ---- */
typedef struct { const char *name; int n, k; } Shape; /* W is [n, k] (out, in), as HF stores it */

static int layer_shapes(Shape *s, int hidden, int inter, int q_dim, int kv_dim) {
    s[0] = (Shape){"q_proj", q_dim, hidden};
    s[1] = (Shape){"k_proj", kv_dim, hidden};
    s[2] = (Shape){"v_proj", kv_dim, hidden};
    s[3] = (Shape){"o_proj", hidden, q_dim};
    s[4] = (Shape){"gate_proj", inter, hidden};
    s[5] = (Shape){"up_proj", inter, hidden};
    s[6] = (Shape){"down_proj", hidden, inter};
    return 7;
}

/* ---- (c) bandwidth ---- */
typedef float v16f __attribute__((vector_size(64)));

typedef struct { const float *p; size_t n; double sum; } SumJob;

static void *sum_worker(void *arg) {
    SumJob *j = arg;
    const v16f *v = (const v16f *)j->p;
    size_t nv = j->n / 16;
    v16f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    size_t i = 0;
    for (; i + 4 <= nv; i += 4) {
        a0 += v[i]; a1 += v[i + 1]; a2 += v[i + 2]; a3 += v[i + 3];
    }
    for (; i < nv; i++) a0 += v[i];
    v16f a = a0 + a1 + a2 + a3;
    double s = 0;
    for (int l = 0; l < 16; l++) s += a[l];
    for (size_t r = nv * 16; r < j->n; r++) s += j->p[r];
    j->sum = s;
    return NULL;
}

static double stream_sum(const float *buf, size_t n, int threads, double *sum_out) {
    pthread_t tid[256];
    SumJob jobs[256];
    if (threads > 256) threads = 256;
    size_t chunk = (n / threads) & ~(size_t)63;
    double t0 = now();
    for (int t = 0; t < threads; t++) {
        jobs[t].p = buf + (size_t)t * chunk;
        jobs[t].n = (t == threads - 1) ? n - (size_t)t * chunk : chunk;
        if (t > 0) pthread_create(&tid[t], NULL, sum_worker, &jobs[t]);
    }
    sum_worker(&jobs[0]);
    for (int t = 1; t < threads; t++) pthread_join(tid[t], NULL);
    double dt = now() - t0;
    double s = 0;
    for (int t = 0; t < threads; t++) s += jobs[t].sum;
    *sum_out = s;
    return dt;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* GB/s of the median and of the best of `reps` passes (after a warm-up pass) */
static void bandwidth(const float *buf, size_t n, int threads, int reps, double *sink, double *median, double *best) {
    double s, *t = malloc(sizeof(double) * reps);
    stream_sum(buf, n, threads, &s); /* warm-up */
    *sink += s;
    for (int r = 0; r < reps; r++) {
        t[r] = stream_sum(buf, n, threads, &s);
        *sink += s;
    }
    qsort(t, reps, sizeof(double), cmp_double);
    double bytes = (double)n * sizeof(float);
    double mid = reps % 2 ? t[reps / 2] : 0.5 * (t[reps / 2 - 1] + t[reps / 2]);
    *median = bytes / mid / 1e9;
    *best = bytes / t[0] / 1e9;
    free(t);
}

static void usage(void) {
    fprintf(stderr,
            "usage: sgemm_bandwidth [--threads N] [--tokens M] [--layers L] [--hidden H]\n"
            "       [--intermediate I] [--heads A] [--kv-heads B] [--head-dim D] [--vocab V]\n"
            "       [--bw-mib MiB] [--reps R] [--bw-reps R] [--skip-bandwidth | --bandwidth-only]\n");
    exit(2);
}

int main(int argc, char **argv) {
    int threads = 2, tokens = 512, layers = 8, hidden = 512, inter = 1408;
    int heads = 8, kv_heads = 4, head_dim = 0, vocab = 4096, reps = 5, bw_reps = 10, skip_bw = 0, bw_only = 0;
    long bw_mib = 1024;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--skip-bandwidth")) { skip_bw = 1; continue; }
        if (!strcmp(a, "--bandwidth-only")) { bw_only = 1; continue; }
        if (i + 1 >= argc) usage();
        long v = strtol(argv[++i], NULL, 10);
        if (!strcmp(a, "--threads")) threads = (int)v;
        else if (!strcmp(a, "--tokens")) tokens = (int)v;
        else if (!strcmp(a, "--layers")) layers = (int)v;
        else if (!strcmp(a, "--hidden")) hidden = (int)v;
        else if (!strcmp(a, "--intermediate")) inter = (int)v;
        else if (!strcmp(a, "--heads")) heads = (int)v;
        else if (!strcmp(a, "--kv-heads")) kv_heads = (int)v;
        else if (!strcmp(a, "--head-dim")) head_dim = (int)v;
        else if (!strcmp(a, "--vocab")) vocab = (int)v;
        else if (!strcmp(a, "--bw-mib")) bw_mib = v;
        else if (!strcmp(a, "--reps")) reps = (int)v;
        else if (!strcmp(a, "--bw-reps")) bw_reps = (int)v;
        else usage();
    }
    if (threads < 1 || tokens < 1 || layers < 1 || hidden < 1 || inter < 1 || heads < 1 ||
        kv_heads < 1 || vocab < 1 || reps < 1 || bw_reps < 1 || bw_mib < 1)
        usage();
    if (head_dim == 0) head_dim = hidden / heads;
    int q_dim = heads * head_dim, kv_dim = kv_heads * head_dim;

    openblas_set_num_threads(threads);

    if (bw_only) { /* a quick re-measurement between benchmark rounds: N threads only */
        size_t n = (size_t)bw_mib * 1024 * 1024 / sizeof(float);
        float *buf = alloc_floats(n, 1.0f, 11);
        double sink = 0, med, best;
        bandwidth(buf, n, threads, bw_reps, &sink, &med, &best);
        free(buf);
        printf("{\"threads\": %d, \"bandwidth\": {\"GBps\": %.3f, \"GBpsBest\": %.3f, \"bufferMiB\": %ld, "
               "\"reps\": %d, \"statistic\": \"median\"}, \"checksum\": %.3g}\n", threads, med, best, bw_mib, bw_reps, sink);
        return 0;
    }

    Shape shapes[7];
    int ns = layer_shapes(shapes, hidden, inter, q_dim, kv_dim);
    size_t layer_params = 0;
    for (int s = 0; s < ns; s++) layer_params += (size_t)shapes[s].n * shapes[s].k;
    size_t lm_params = (size_t)vocab * hidden;

    /* weights: every layer its own buffers, like the model */
    float **w = malloc(sizeof(float *) * layers * ns);
    for (int l = 0; l < layers; l++)
        for (int s = 0; s < ns; s++)
            w[l * ns + s] = alloc_floats((size_t)shapes[s].n * shapes[s].k, 0.05f, 1000 + l * ns + s);
    float *lm = alloc_floats(lm_params, 0.05f, 7);
    int maxk = hidden > inter ? hidden : inter;
    if (q_dim > maxk) maxk = q_dim;
    if (kv_dim > maxk) maxk = kv_dim;
    int maxn = inter > vocab ? inter : vocab;
    if (q_dim > maxn) maxn = q_dim;
    if (hidden > maxn) maxn = hidden;
    float *x = alloc_floats((size_t)tokens * maxk, 1.0f, 3);
    float *y = alloc_floats((size_t)tokens * maxn, 0.0f, 4);

    /* ---- (a) sgemm at M = tokens ---- */
    double per_shape_best[7];
    for (int s = 0; s < ns; s++) per_shape_best[s] = 1e30;
    double best_layers = 1e30;
    for (int r = 0; r <= reps; r++) { /* r == 0 is the warm-up */
        double t0 = now();
        for (int l = 0; l < layers; l++)
            for (int s = 0; s < ns; s++) {
                double ts = now();
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, tokens, shapes[s].n, shapes[s].k,
                            1.0f, x, shapes[s].k, w[l * ns + s], shapes[s].k, 0.0f, y, shapes[s].n);
                double d = (now() - ts);
                if (r > 0 && d < per_shape_best[s]) per_shape_best[s] = d;
            }
        double dt = now() - t0;
        if (r > 0 && dt < best_layers) best_layers = dt;
    }
    double sgemm_flops = 2.0 * tokens * (double)layer_params * layers;
    double sgemm_gflops = sgemm_flops / best_layers / 1e9;

    double best_lm = 1e30;
    for (int r = 0; r <= reps; r++) {
        double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, tokens, vocab, hidden, 1.0f, x, hidden,
                    lm, hidden, 0.0f, y, vocab);
        double dt = now() - t0;
        if (r > 0 && dt < best_lm) best_lm = dt;
    }

    /* ---- (b) one token: sgemv vs sgemm(M=1) over the whole model ---- */
    double best_gemv = 1e30, best_gemm1 = 1e30;
    for (int mode = 0; mode < 2; mode++) {
        for (int r = 0; r <= reps; r++) {
            double t0 = now();
            for (int l = 0; l < layers; l++)
                for (int s = 0; s < ns; s++) {
                    const float *W = w[l * ns + s];
                    int n = shapes[s].n, k = shapes[s].k;
                    if (mode == 0)
                        cblas_sgemv(CblasRowMajor, CblasNoTrans, n, k, 1.0f, W, k, x, 1, 0.0f, y, 1);
                    else
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, 1, n, k, 1.0f, x, k, W, k,
                                    0.0f, y, n);
                }
            if (mode == 0)
                cblas_sgemv(CblasRowMajor, CblasNoTrans, vocab, hidden, 1.0f, lm, hidden, x, 1, 0.0f, y, 1);
            else
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, 1, vocab, hidden, 1.0f, x, hidden, lm,
                            hidden, 0.0f, y, vocab);
            double dt = now() - t0;
            if (r > 0) {
                if (mode == 0 && dt < best_gemv) best_gemv = dt;
                if (mode == 1 && dt < best_gemm1) best_gemm1 = dt;
            }
        }
    }
    /* one cache-resident matrix per shape: sgemm(M=1) time / sgemv time */
    double hot_slowdown[8];
    for (int s = 0; s <= ns; s++) {
        const float *W = s < ns ? w[s] : lm;
        int n = s < ns ? shapes[s].n : vocab, k = s < ns ? shapes[s].k : hidden;
        double bv = 1e30, bm = 1e30;
        for (int r = 0; r < 201; r++) {
            double t0 = now();
            cblas_sgemv(CblasRowMajor, CblasNoTrans, n, k, 1.0f, W, k, x, 1, 0.0f, y, 1);
            double d = now() - t0;
            if (r > 0 && d < bv) bv = d;
            t0 = now();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, 1, n, k, 1.0f, x, k, W, k, 0.0f, y, n);
            d = now() - t0;
            if (r > 0 && d < bm) bm = d;
        }
        hot_slowdown[s] = bm / bv;
    }

    double token_params = (double)layer_params * layers + (double)lm_params;
    double gemv_flops = 2.0 * token_params;
    double token_bytes = 4.0 * token_params;

    double sink = y[0];
    for (int l = 0; l < layers * ns; l++) free(w[l]);
    free(w);
    free(lm);
    free(x);
    free(y);

    /* ---- (c) bandwidth ---- */
    double bw = 0, bw_best = 0, bw1 = 0, bw1_best = 0;
    if (!skip_bw) {
        size_t n = (size_t)bw_mib * 1024 * 1024 / sizeof(float);
        float *buf = alloc_floats(n, 1.0f, 11);
        bandwidth(buf, n, threads, bw_reps, &sink, &bw, &bw_best);
        if (threads == 1) {
            bw1 = bw;
            bw1_best = bw_best;
        } else {
            bandwidth(buf, n, 1, bw_reps, &sink, &bw1, &bw1_best);
        }
        free(buf);
    }

    printf("{\n");
    printf("  \"threads\": %d,\n", threads);
    printf("  \"openblas\": {\"config\": \"%s\", \"core\": \"%s\", \"threads\": %d},\n",
           openblas_get_config(), openblas_get_corename(), openblas_get_num_threads());
    printf("  \"shapes\": {\"tokens\": %d, \"layers\": %d, \"hidden\": %d, \"intermediate\": %d, "
           "\"qDim\": %d, \"kvDim\": %d, \"vocab\": %d, \"layerMatmulParams\": %zu, \"lmHeadParams\": %zu},\n",
           tokens, layers, hidden, inter, q_dim, kv_dim, vocab, layer_params, lm_params);
    printf("  \"sgemm\": {\"gflops\": %.3f, \"seconds\": %.6f, \"flops\": %.0f, \"perShapeGflops\": {",
           sgemm_gflops, best_layers, sgemm_flops);
    for (int s = 0; s < ns; s++)
        printf("%s\"%s\": %.3f", s ? ", " : "", shapes[s].name,
               2.0 * tokens * shapes[s].n * (double)shapes[s].k / per_shape_best[s] / 1e9);
    printf("}, \"lmHeadGflops\": %.3f},\n", 2.0 * tokens * (double)lm_params / best_lm / 1e9);
    printf("  \"sgemv\": {\"gflops\": %.3f, \"secondsPerToken\": %.6f, \"bytesPerToken\": %.0f, "
           "\"effectiveGBps\": %.3f, \"sgemmM1Gflops\": %.3f, \"sgemmM1SecondsPerToken\": %.6f, "
           "\"sgemmM1SlowdownVsSgemv\": %.2f, \"sgemmM1SlowdownHotPerShape\": {",
           gemv_flops / best_gemv / 1e9, best_gemv, token_bytes, token_bytes / best_gemv / 1e9,
           gemv_flops / best_gemm1 / 1e9, best_gemm1, best_gemm1 / best_gemv);
    for (int s = 0; s <= ns; s++)
        printf("%s\"%s\": %.2f", s ? ", " : "", s < ns ? shapes[s].name : "lm_head", hot_slowdown[s]);
    printf("}},\n");
    if (skip_bw)
        printf("  \"bandwidth\": null,\n");
    else
        printf("  \"bandwidth\": {\"GBps\": %.3f, \"GBpsBest\": %.3f, \"GBps1Thread\": %.3f, \"GBps1ThreadBest\": %.3f, "
               "\"bufferMiB\": %ld, \"reps\": %d, \"statistic\": \"median\"},\n",
               bw, bw_best, bw1, bw1_best, bw_mib, bw_reps);
    printf("  \"checksum\": %.3g\n}\n", sink);
    return 0;
}

/* Vectorizable math for the compiled CPU kernels (modules/kernels/native.py builds each kernel's C
   file; a kernel includes this header with #include "../vecmath.h", and native.py puts the
   text of the files a kernel includes into its build key, so a change here rebuilds them).

   exp_f32: the Cephes polynomial (about 1 ulp), written out so that the compiler vectorizes it:
   the rounding to n = round(x / ln 2) adds and subtracts 1.5 * 2^23 rather than calling floorf,
   and 2^n is built from its bits. Arguments are clamped to [-87.3, 88.7], so a result below
   FLT_MIN comes out near FLT_MIN rather than as a denormal or 0.
   sig_f32 = 1 / (1 + exp(-x)); tanh_f32 from exp(-2|x|), by its odd polynomial below |x| = 0.0625
   (no cancellation near 0). The double versions call libm.

   AXPY_ROWS: y += M^T x for a row-major M, one vectorized row update per row of M, the form of every
   small matrix-vector product in the recurrences (a loop of row dot products would end each row in
   a horizontal sum, which the compiler does lane by lane).

   axpy_block_f32/f64: AXPY_ROWS on ROW_BLOCK rows of a batch at once, Y[r] += M^T X[r]. A step of a
   recurrence multiplies every batch row's state by the same M; one row at a time reads all of M
   per row and step, from L2 once M outgrows L1 (an LSTM's R is 64 KB at H = 64), which held the
   kernels to a third of the machine's matmul peak. Four rows at a time read each row of M once
   for the four, and a tile of ROW_TILE outputs per row stays in registers over the whole sum. Each
   output adds its terms in AXPY_ROWS's order (m ascending, one multiply-add each), so the result
   is AXPY_ROWS's bit for bit. A kernel that uses it steps ROW_BLOCK batch rows through time
   together, and sizes its scratch for them (native.ROW_BLOCK, which claimcheck_row_block reports
   so that the two cannot drift apart). */
#ifndef CLAIMCHECK_VECMATH_H
#define CLAIMCHECK_VECMATH_H
#include <math.h>
#include <stdint.h>
#include <string.h>

/* y (n) += sum_m x[m] M[m, :], M (m_len, n) row-major */
#define AXPY_ROWS(T, y, M, x, m_len, n)                                                      \
    for (int64_t m_ = 0; m_ < (m_len); m_++) {                                                \
        const T xm_ = (x)[m_];                                                                \
        const T *row_ = (M) + m_ * (n);                                                       \
        _Pragma("omp simd")                                                                   \
        for (int64_t j_ = 0; j_ < (n); j_++) (y)[j_] += xm_ * row_[j_];                        \
    }

#define ROW_BLOCK 4    /* batch rows per recurrent product; native.py's ROW_BLOCK */
#define ROW_TILE 32    /* outputs per row held in registers: 4 x 32 floats, 16 ymm or 8 zmm accumulators */

int claimcheck_row_block(void) { return ROW_BLOCK; }

/* the rows in the block of ROW_BLOCK batch rows that starts at b0 (the last block may have fewer) */
#define BLOCK_ROWS(Bn, b0) ((Bn) - (b0) < ROW_BLOCK ? (Bn) - (b0) : ROW_BLOCK)

/* a block's states, n floats a row: dst[r] = src's row b0 + r (zeros where src is NULL), and back */
#define LOAD_ROWS(T, dst, src, b0, nb, n)                                                     \
    for (int64_t r_ = 0; r_ < (nb); r_++) {                                                   \
        if (src) memcpy((dst) + r_ * (n), (src) + ((b0) + r_) * (n), (size_t)(n) * sizeof(T)); \
        else memset((dst) + r_ * (n), 0, (size_t)(n) * sizeof(T));                            \
    }
#define STORE_ROWS(T, dst, src, b0, nb, n)                                                    \
    if (dst) for (int64_t r_ = 0; r_ < (nb); r_++)                                            \
        memcpy((dst) + ((b0) + r_) * (n), (src) + r_ * (n), (size_t)(n) * sizeof(T));

/* Y[r * ldy + j] += sum_m X[r * ldx + m] M[m * n + j] for r < nb (nb <= ROW_BLOCK), j < n */
#define DEFINE_AXPY_BLOCK(NAME, T)                                                            \
static inline void NAME(int64_t nb, T *restrict Y, int64_t ldy, const T *restrict X, int64_t ldx, \
                        const T *restrict M, int64_t m_len, int64_t n) {                      \
    if (nb != 4) {                                                                            \
        for (int64_t r = 0; r < nb; r++) AXPY_ROWS(T, Y + r * ldy, M, X + r * ldx, m_len, n)  \
        return;                                                                               \
    }                                                                                         \
    T *restrict y0 = Y, *restrict y1 = Y + ldy, *restrict y2 = Y + 2 * ldy, *restrict y3 = Y + 3 * ldy; \
    const T *x0 = X, *x1 = X + ldx, *x2 = X + 2 * ldx, *x3 = X + 3 * ldx;                     \
    int64_t j0 = 0;                                                                           \
    for (; j0 + ROW_TILE <= n; j0 += ROW_TILE) {                                              \
        T a0[ROW_TILE], a1[ROW_TILE], a2[ROW_TILE], a3[ROW_TILE];                             \
        _Pragma("omp simd")                                                                   \
        for (int64_t j = 0; j < ROW_TILE; j++) {                                              \
            a0[j] = y0[j0 + j]; a1[j] = y1[j0 + j]; a2[j] = y2[j0 + j]; a3[j] = y3[j0 + j];  \
        }                                                                                     \
        for (int64_t m = 0; m < m_len; m++) {                                                 \
            const T *w = M + m * n + j0;                                                      \
            const T b0 = x0[m], b1 = x1[m], b2 = x2[m], b3 = x3[m];                           \
            _Pragma("omp simd")                                                               \
            for (int64_t j = 0; j < ROW_TILE; j++) {                                          \
                a0[j] += b0 * w[j]; a1[j] += b1 * w[j]; a2[j] += b2 * w[j]; a3[j] += b3 * w[j]; \
            }                                                                                 \
        }                                                                                     \
        _Pragma("omp simd")                                                                   \
        for (int64_t j = 0; j < ROW_TILE; j++) {                                              \
            y0[j0 + j] = a0[j]; y1[j0 + j] = a1[j]; y2[j0 + j] = a2[j]; y3[j0 + j] = a3[j];  \
        }                                                                                     \
    }                                                                                         \
    if (j0 < n) {                                   /* the last n mod ROW_TILE outputs */     \
        for (int64_t m = 0; m < m_len; m++) {                                                 \
            const T *w = M + m * n;                                                           \
            const T b0 = x0[m], b1 = x1[m], b2 = x2[m], b3 = x3[m];                           \
            _Pragma("omp simd")                                                               \
            for (int64_t j = j0; j < n; j++) {                                                \
                y0[j] += b0 * w[j]; y1[j] += b1 * w[j]; y2[j] += b2 * w[j]; y3[j] += b3 * w[j]; \
            }                                                                                 \
        }                                                                                     \
    }                                                                                         \
}

DEFINE_AXPY_BLOCK(axpy_block_f32, float)
DEFINE_AXPY_BLOCK(axpy_block_f64, double)

#pragma omp declare simd notinbranch
static inline float exp_f32(float x) {
    x = x < -87.3f ? -87.3f : (x > 88.7f ? 88.7f : x);
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;   /* round(x / ln 2): 1.5 * 2^23 */
    x = x - n * 0.693359375f + n * 2.12194440e-4f;
    float z = x * x;
    float y = ((((1.9875691500e-4f * x + 1.3981999507e-3f) * x + 8.3334519073e-3f) * x
                + 4.1665795894e-2f) * x + 1.6666665459e-1f) * x + 5.0000001201e-1f;
    y = y * z + x + 1.0f;
    union { int32_t i; float f; } u;                                   /* 2^n */
    u.i = ((int32_t)n + 127) << 23;
    return y * u.f;
}

#pragma omp declare simd notinbranch
static inline double exp_f64(double x) { return exp(x); }

#pragma omp declare simd notinbranch
static inline float sig_f32(float x) { return 1.0f / (1.0f + exp_f32(-x)); }

#pragma omp declare simd notinbranch
static inline float tanh_f32(float x) {
    float ax = fabsf(x);
    float e = exp_f32(-2.0f * ax);
    float big = (1.0f - e) / (1.0f + e);
    float x2 = x * x;
    float small = ax * (1.0f + x2 * (-0.333333343f + x2 * (0.133333340f + x2 * -0.0539682545f)));
    float r = ax < 0.0625f ? small : big;
    return copysignf(r, x);
}

#pragma omp declare simd notinbranch
static inline double sig_f64(double x) { return 1.0 / (1.0 + exp(-x)); }

#pragma omp declare simd notinbranch
static inline double tanh_f64(double x) { return tanh(x); }

#endif

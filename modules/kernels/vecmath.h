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
   a horizontal sum, which the compiler does lane by lane). */
#ifndef CLAIMCHECK_VECMATH_H
#define CLAIMCHECK_VECMATH_H
#include <math.h>
#include <stdint.h>

/* y (n) += sum_m x[m] M[m, :], M (m_len, n) row-major */
#define AXPY_ROWS(T, y, M, x, m_len, n)                                                      \
    for (int64_t m_ = 0; m_ < (m_len); m_++) {                                                \
        const T xm_ = (x)[m_];                                                                \
        const T *row_ = (M) + m_ * (n);                                                       \
        _Pragma("omp simd")                                                                   \
        for (int64_t j_ = 0; j_ < (n); j_++) (y)[j_] += xm_ * row_[j_];                        \
    }

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

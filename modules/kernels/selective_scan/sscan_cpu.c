/* CPU kernel of the real selective scan (Mamba's S6) from its discretization on (modules/kernels/selective_scan/).

   Per batch row b, time t, channel d and state n (torch computes Delta and x = Delta u):
       a[t,n,d] = exp(Delta[t,d] A[n,d])
       h[t,n,d] = a[t,n,d] h[t-1,n,d] + x[t,d] B[t,g(d),n]
       y[t,d]   = sum_n C[t,k(d),n] h[t,n,d]
   g(d) = d / (D / GB) and k(d) = d / (D / GC): the groups of B and C (one group: shared by all d).
   Layout, contiguous and time-major: dt, x, y (B, L, D); A (N, D) (the model's (D, N),
   transposed); B (B, L, GB, N); C (B, L, GC, N); hs (B, L, N, D); h0, hT (B, N, D).
   The channels are the inner, vectorized loop: a row's state (N, D) stays in L1 across time, the
   sum over n accumulates whole vectors of y, and B and C are scalars over a block of channels
   that share their groups. No (B, L, D, N) tensor is built but the states the backward reads;
   a is recomputed where it is used.
   exp: ../vecmath.h (float: the vectorizable Cephes polynomial, about 1 ulp; double: libm).

   Forward:  hs may be NULL (no gradient wanted): then only the final state is written, from
             the running state in `work` (N * D values, the caller's).
   Backward: one reverse pass per row, with g the gradient of h[t] in `work`:
       g      += dy[t,d] C[t,k(d),n]                (y's share)
       dC[t,k(d),n] += sum_d dy[t,d] h[t,n,d]
       q         = g h[t-1,n,d] a[t,n,d]          (the gradient of Delta A; h[-1] = h0, or 0)
       ddt[t,d]  = sum_n q A[n,d];   dA[n,d] += q Delta[t,d]
       dx[t,d]   = sum_n g B[t,g(d),n];   dB[t,g(d),n] += sum_d g x[t,d]
       g      *= a[t,n,d]                          (the gradient of h[t-1])
   and dh0 = g at the end. `work` holds 2 N D values, the second half zeros (h[-1] without h0).
   dA, dB and dC accumulate (over rows, time, the channels of a group): the caller zeroes them.
   No allocation, no threads, no global state: torch owns every buffer. Built by
   modules/kernels/native.py (with -fopenmp-simd for the marked loops: their reductions may be
   reordered to vectorize), loaded with ctypes (selective_scan/cpu.py). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../vecmath.h"   /* exp_f32, exp_f64 */


static int64_t gcd64(int64_t a, int64_t b) {
    while (b) { int64_t t = a % b; a = b; b = t; }
    return a;
}

#define SSCAN_FWD(NAME, T, EXP)                                                               \
void NAME(int64_t Bn, int64_t L, int64_t D, int64_t N, int64_t GB, int64_t GC,                \
          const T *restrict dt, const T *restrict A, const T *restrict x, const T *restrict Bm, \
          const T *restrict Cm, const T *restrict h0, T *restrict y, T *restrict hs,          \
          T *restrict hT, T *restrict work) {                                                 \
    const int64_t pb = D / GB, pc = D / GC, blk = gcd64(pb, pc);                              \
    for (int64_t b = 0; b < Bn; b++) {                                                        \
        T *h = work;                                                                          \
        if (h0) memcpy(h, h0 + b * N * D, (size_t)(N * D) * sizeof(T));                       \
        else memset(h, 0, (size_t)(N * D) * sizeof(T));                                       \
        for (int64_t t = 0; t < L; t++) {                                                     \
            const int64_t bt = b * L + t;                                                     \
            const T *dtt = dt + bt * D, *xt = x + bt * D;                                     \
            const T *Bt = Bm + bt * GB * N, *Ct = Cm + bt * GC * N;                           \
            T *yt = y + bt * D;                                                               \
            memset(yt, 0, (size_t)D * sizeof(T));                                             \
            for (int64_t n = 0; n < N; n++) {                                                 \
                const T *An = A + n * D;                                                      \
                T *hn = h + n * D;                                                            \
                for (int64_t d0 = 0; d0 < D; d0 += blk) {                                     \
                    const T Bs = Bt[(d0 / pb) * N + n], Cs = Ct[(d0 / pc) * N + n];           \
                    _Pragma("omp simd")                                                       \
                    for (int64_t d = d0; d < d0 + blk; d++) {                                 \
                        T v = EXP(dtt[d] * An[d]) * hn[d] + xt[d] * Bs;                       \
                        hn[d] = v;                                                            \
                        yt[d] += Cs * v;                                                      \
                    }                                                                         \
                }                                                                             \
            }                                                                                 \
            if (hs) memcpy(hs + bt * N * D, h, (size_t)(N * D) * sizeof(T));                  \
        }                                                                                     \
        if (hT) memcpy(hT + b * N * D, h, (size_t)(N * D) * sizeof(T));                       \
    }                                                                                         \
}

#define SSCAN_BWD(NAME, T, EXP)                                                               \
void NAME(int64_t Bn, int64_t L, int64_t D, int64_t N, int64_t GB, int64_t GC,                \
          const T *restrict dt, const T *restrict A, const T *restrict x, const T *restrict Bm, \
          const T *restrict Cm, const T *restrict h0, const T *restrict hs,                   \
          const T *restrict dy, const T *restrict dhT, T *restrict ddt, T *restrict dA,       \
          T *restrict dx, T *restrict dB, T *restrict dC, T *restrict dh0, T *restrict work) { \
    const int64_t pb = D / GB, pc = D / GC, blk = gcd64(pb, pc);                              \
    for (int64_t b = 0; b < Bn; b++) {                                                        \
        T *g = work;                                                                          \
        if (dhT) memcpy(g, dhT + b * N * D, (size_t)(N * D) * sizeof(T));                     \
        else memset(g, 0, (size_t)(N * D) * sizeof(T));                                       \
        const T *p0 = h0 ? h0 + b * N * D : work + N * D;   /* the caller's zeros */           \
        for (int64_t t = L - 1; t >= 0; t--) {                                                \
            const int64_t bt = b * L + t;                                                     \
            const T *dtt = dt + bt * D, *xt = x + bt * D, *ht = hs + bt * N * D;              \
            const T *hp = t ? hs + (bt - 1) * N * D : p0;                                     \
            const T *Bt = Bm + bt * GB * N, *Ct = Cm + bt * GC * N, *dyt = dy + bt * D;       \
            T *ddtt = ddt + bt * D, *dxt = dx + bt * D;                                       \
            T *dBt = dB + bt * GB * N, *dCt = dC + bt * GC * N;                               \
            memset(ddtt, 0, (size_t)D * sizeof(T));                                           \
            memset(dxt, 0, (size_t)D * sizeof(T));                                            \
            for (int64_t n = 0; n < N; n++) {                                                 \
                const T *An = A + n * D, *hn = ht + n * D, *hpn = hp + n * D;                 \
                T *gn_ = g + n * D, *dAn = dA + n * D;                                        \
                for (int64_t d0 = 0; d0 < D; d0 += blk) {                                     \
                    const int64_t bg = d0 / pb, cg = d0 / pc;                                 \
                    const T Bs = Bt[bg * N + n], Cs = Ct[cg * N + n];                         \
                    T sC = 0, sB = 0;                                                         \
                    _Pragma("omp simd reduction(+:sC, sB)")                                   \
                    for (int64_t d = d0; d < d0 + blk; d++) {                                 \
                        T a = EXP(dtt[d] * An[d]);                                            \
                        T gy = dyt[d];                                                        \
                        T gv = gn_[d] + gy * Cs;                                              \
                        sC += gy * hn[d];                                                     \
                        T q = gv * hpn[d] * a;                                                \
                        ddtt[d] += q * An[d];                                                 \
                        dAn[d] += q * dtt[d];                                                 \
                        dxt[d] += gv * Bs;                                                    \
                        sB += gv * xt[d];                                                     \
                        gn_[d] = gv * a;                                                      \
                    }                                                                         \
                    dCt[cg * N + n] += sC;                                                    \
                    dBt[bg * N + n] += sB;                                                    \
                }                                                                             \
            }                                                                                 \
        }                                                                                     \
        if (dh0) memcpy(dh0 + b * N * D, g, (size_t)(N * D) * sizeof(T));                     \
    }                                                                                         \
}

SSCAN_FWD(sscan_fwd_f32, float, exp_f32)
SSCAN_FWD(sscan_fwd_f64, double, exp_f64)
SSCAN_BWD(sscan_bwd_f32, float, exp_f32)
SSCAN_BWD(sscan_bwd_f64, double, exp_f64)

/* the ABI version, so that a caller can tell builds apart */
int claimcheck_sscan_abi(void) { return 3; }

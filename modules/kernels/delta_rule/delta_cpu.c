/* CPU kernel of the delta rule (modules/kernels/delta_rule/: naive.py has the equations).

   Layout, contiguous, as the op's: q, k (B, T, H, K); v (B, T, H, V); beta (B, T, H); S0 (B, H, K, V)
   or NULL (zeros); o (B, T, H, V); ST (B, H, K, V) the state after the last step. `states`
   (B, H, ceil(T / C), K, V) takes, for the backward, the state every C-th step starts from (S_{t-1}
   at t = 0, C, 2C, ...: a checkpoint per chunk of C steps); NULL when no gradient is wanted
   (evaluations keep only the running state). One (b, h) pair at a time, its K x V state in `work`
   (L1 at the models' K = V = 16..64); each step's products are loops over V, vectorized, one row of
   S per key component:

     u   = v_t - S_{t-1}^T k_t                    (V)
     S_t = S_{t-1} + beta_t k_t u^T               (K, V)
     o_t = S_t^T q_t                              (V)

   Backward, per pair, chunk by chunk from the last: the chunk's C states S_{t-1} are rebuilt in
   `work` from its checkpoint, in both layouts, (K, V) and (V, K) (one forward step each; 2 C K V
   values, in L1 or L2, in place of the T K V a saved history would write and read), then per step
   in reverse, with dS the gradient of S_t (dST, else zeros, at t = T - 1), also kept in both
   layouts, so that every product below is a vectorized row update (AXPY_ROWS, RANK1) and none
   ends in a horizontal sum but the two dots u . do and k . (dS u):

     dS     += q_t do_t^T
     dq_t    = S_t do_t = S_{t-1} do_t + beta_t k_t (u . do_t)
     du      = beta_t dS^T k_t;   dv_t = du
     dbeta_t = k_t^T dS u
     dk_t    = beta_t dS u - S_{t-1} du
     dS_{t-1} = dS - k_t du^T

   and dS0 is the dS left after step 0. No allocation, no threads, no global state: torch owns every
   buffer. Built by modules/kernels/native.py, loaded with ctypes (delta_rule/cpu.py). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../vecmath.h"   /* AXPY_ROWS */

/* u (V) = v_t - S^T k_t */
#define DELTA_U(T, u, S, kt, vt, K, V)                                                        \
    memcpy(u, vt, (size_t)(V) * sizeof(T));                                                   \
    for (int64_t i = 0; i < (K); i++) {                                                       \
        const T ki = (kt)[i];                                                                 \
        const T *s = (S) + i * (V);                                                           \
        _Pragma("omp simd")                                                                   \
        for (int64_t j = 0; j < (V); j++) (u)[j] -= ki * s[j];                                \
    }

#define DELTA_FWD(NAME, T)                                                                    \
void NAME(int64_t Bn, int64_t L, int64_t H, int64_t K, int64_t V, int64_t C, const T *restrict q, \
          const T *restrict k, const T *restrict v, const T *restrict beta, const T *restrict S0, \
          T *restrict o, T *restrict ST, T *restrict states, T *restrict work) {             \
    T *S = work, *u = work + K * V;                                                           \
    const int64_t nC = (L + C - 1) / C;                                                       \
    for (int64_t b = 0; b < Bn; b++)                                                          \
    for (int64_t h = 0; h < H; h++) {                                                         \
        const int64_t bh = b * H + h;                                                         \
        if (S0) memcpy(S, S0 + bh * K * V, (size_t)(K * V) * sizeof(T));                     \
        else memset(S, 0, (size_t)(K * V) * sizeof(T));                                      \
        for (int64_t t = 0; t < L; t++) {                                                     \
            const int64_t r = (b * L + t) * H + h;          /* the (b, t, h) row */           \
            const T *qt = q + r * K, *kt = k + r * K, *vt = v + r * V;                        \
            const T bt = beta[r];                                                             \
            T *ot = o + r * V;                                                                \
            if (states && t % C == 0)                                                         \
                memcpy(states + (bh * nC + t / C) * K * V, S, (size_t)(K * V) * sizeof(T));    \
            DELTA_U(T, u, S, kt, vt, K, V)                                                    \
            memset(ot, 0, (size_t)V * sizeof(T));                                             \
            for (int64_t i = 0; i < K; i++) {                                                 \
                const T c = bt * kt[i], qi = qt[i];                                           \
                T *s = S + i * V;                                                             \
                _Pragma("omp simd")                                                           \
                for (int64_t j = 0; j < V; j++) { s[j] += c * u[j]; ot[j] += qi * s[j]; }     \
            }                                                                                 \
        }                                                                                     \
        if (ST) memcpy(ST + bh * K * V, S, (size_t)(K * V) * sizeof(T));                     \
    }                                                                                         \
}

/* M (m_len, n) += a b^T */
#define RANK1(T, M, a, b, m_len, n)                                                           \
    for (int64_t m_ = 0; m_ < (m_len); m_++) {                                                \
        const T am = (a)[m_];                                                                 \
        T *row = (M) + m_ * (n);                                                              \
        _Pragma("omp simd")                                                                   \
        for (int64_t j_ = 0; j_ < (n); j_++) row[j_] += am * (b)[j_];                          \
    }

#define DOT(T, out, a, b, n)                                                                  \
    { T acc_ = 0; for (int64_t j_ = 0; j_ < (n); j_++) acc_ += (a)[j_] * (b)[j_]; out = acc_; }

#define DELTA_BWD(NAME, T)                                                                    \
void NAME(int64_t Bn, int64_t L, int64_t H, int64_t K, int64_t V, int64_t C, const T *restrict q, \
          const T *restrict k, const T *restrict v, const T *restrict beta,                   \
          const T *restrict states, const T *restrict do_, const T *restrict dST,             \
          T *restrict dq, T *restrict dk, T *restrict dv, T *restrict dbeta,                  \
          T *restrict dS0, T *restrict work) {                                                \
    const int64_t nC = (L + C - 1) / C, KV = K * V;                                           \
    /* dS (K, V) and its transpose dSt (V, K); u, du (V); dsu (K); nbu (V): beta u, then -du;  \
       hist, histT: the chunk's C states S_{t-1}, (K, V) and (V, K) */                        \
    T *dS = work, *dSt = dS + KV, *u = dSt + KV, *du = u + V, *nbu = du + V, *dsu = nbu + V;  \
    T *hist = dsu + K, *histT = hist + C * KV;                                                \
    for (int64_t b = 0; b < Bn; b++)                                                          \
    for (int64_t h = 0; h < H; h++) {                                                         \
        const int64_t bh = b * H + h;                                                         \
        if (dST) memcpy(dS, dST + bh * KV, (size_t)KV * sizeof(T));                          \
        else memset(dS, 0, (size_t)KV * sizeof(T));                                           \
        for (int64_t i = 0; i < K; i++)                                                       \
            for (int64_t j = 0; j < V; j++) dSt[j * K + i] = dS[i * V + j];                   \
        for (int64_t c = nC - 1; c >= 0; c--) {                                               \
            const int64_t t0 = c * C, t1 = t0 + C < L ? t0 + C : L;                           \
            const T *ck = states + (bh * nC + c) * KV;                                        \
            memcpy(hist, ck, (size_t)KV * sizeof(T));                                         \
            for (int64_t i = 0; i < K; i++)                                                   \
                for (int64_t j = 0; j < V; j++) histT[j * K + i] = ck[i * V + j];             \
            for (int64_t t = t0; t < t1 - 1; t++) {          /* S_t from S_{t-1}, both layouts */ \
                const int64_t r = (b * L + t) * H + h;                                        \
                const T *kt = k + r * K, bt = beta[r];                                        \
                const T *Sp = hist + (t - t0) * KV, *SpT = histT + (t - t0) * KV;             \
                T *Sn = hist + (t - t0 + 1) * KV, *SnT = histT + (t - t0 + 1) * KV;           \
                DELTA_U(T, u, Sp, kt, v + r * V, K, V)                                        \
                _Pragma("omp simd")                                                           \
                for (int64_t j = 0; j < V; j++) nbu[j] = bt * u[j];                           \
                for (int64_t i = 0; i < K; i++) {                                             \
                    const T ki = kt[i];                                                       \
                    _Pragma("omp simd")                                                       \
                    for (int64_t j = 0; j < V; j++) Sn[i * V + j] = Sp[i * V + j] + ki * nbu[j]; \
                }                                                                             \
                for (int64_t j = 0; j < V; j++) {                                             \
                    const T uj = nbu[j];                                                      \
                    _Pragma("omp simd")                                                       \
                    for (int64_t i = 0; i < K; i++) SnT[j * K + i] = SpT[j * K + i] + uj * kt[i]; \
                }                                                                             \
            }                                                                                 \
            for (int64_t t = t1 - 1; t >= t0; t--) {                                          \
                const int64_t r = (b * L + t) * H + h;                                        \
                const T *qt = q + r * K, *kt = k + r * K, *dot = do_ + r * V;                  \
                const T bt = beta[r];                                                         \
                const T *Sp = hist + (t - t0) * KV, *SpT = histT + (t - t0) * KV;  /* S_{t-1} */ \
                T *dqt = dq + r * K, *dkt = dk + r * K, *dvt = dv + r * V;                    \
                DELTA_U(T, u, Sp, kt, v + r * V, K, V)                                        \
                T udo, db;                                                                    \
                DOT(T, udo, u, dot, V)                                                        \
                RANK1(T, dS, qt, dot, K, V)                         /* dS += q do^T */        \
                RANK1(T, dSt, dot, qt, V, K)                                                  \
                /* dq = S_t do = S_{t-1} do + beta k (u . do) */                              \
                _Pragma("omp simd")                                                           \
                for (int64_t i = 0; i < K; i++) { dqt[i] = bt * udo * kt[i]; dsu[i] = 0; }    \
                AXPY_ROWS(T, dqt, SpT, dot, V, K)                                             \
                AXPY_ROWS(T, dsu, dSt, u, V, K)                     /* dS u */                \
                DOT(T, db, kt, dsu, K)                                                        \
                dbeta[r] = db;                                                                \
                _Pragma("omp simd")                                                           \
                for (int64_t j = 0; j < V; j++) du[j] = 0;                                    \
                AXPY_ROWS(T, du, dS, kt, K, V)                      /* dS^T k */              \
                _Pragma("omp simd")                                                           \
                for (int64_t j = 0; j < V; j++) { du[j] *= bt; dvt[j] = du[j]; nbu[j] = -du[j]; } \
                /* dk = beta dS u - S_{t-1} du */                                             \
                _Pragma("omp simd")                                                           \
                for (int64_t i = 0; i < K; i++) dkt[i] = bt * dsu[i];                         \
                AXPY_ROWS(T, dkt, SpT, nbu, V, K)                                             \
                RANK1(T, dS, kt, nbu, K, V)                         /* dS -= k du^T */        \
                RANK1(T, dSt, nbu, kt, V, K)                                                  \
            }                                                                                 \
        }                                                                                     \
        if (dS0) memcpy(dS0 + bh * KV, dS, (size_t)KV * sizeof(T));                          \
    }                                                                                         \
}

DELTA_FWD(delta_fwd_f32, float)
DELTA_FWD(delta_fwd_f64, double)
DELTA_BWD(delta_bwd_f32, float)
DELTA_BWD(delta_bwd_f64, double)

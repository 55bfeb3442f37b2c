/* CPU kernels of the Elman and GRU recurrences (modules/kernels/rnn/: naive.py has the equations).

   Layout, contiguous: u (B, T, G H), the input projection W x + b of every step (G = 1 for Elman,
   3 for the GRU, rows [r, z, n]); RT (H, G H) the recurrent matrix transposed (forward), R (G H, H)
   itself (backward); bR (3 H) the GRU's recurrent bias (the n row's sits inside r * (.)); h0 (B, H)
   or NULL (zeros); ys (B, T, H) the state after each step (the output, and what the backward reads);
   GRU acts (B, T, 4, H): r, z, n and R_n h + b_n after each step, NULL when no gradient is wanted
   (a scratch row of `work` takes them). The batch's rows go through time ROW_BLOCK (four) at a
   time, their states in L1: each step's R h_{t-1} for the block is one axpy_block (../vecmath.h),
   which reads R once for the four rows and sums each row's terms in the order a row alone would.

   Backward, per row and step in reverse, g = dh + dys[t] the gradient of h_t:
     Elman   dpre = g act'(pre) (tanh: 1 - h^2; relu: h > 0; linear: 1);  du_t = dpre;  dh_{t-1} = R^T dpre
     GRU     dn = g (1 - z);  dz = g (h_{t-1} - n);  dh_{t-1} = g z
             d_n = dn (1 - n^2);  dr = d_n hn;  d_z = dz z (1 - z);  d_r = dr r (1 - r)
             du_t = [d_r, d_z, d_n];  da_t = [d_r, d_z, d_n r] (the gradient of R h + bR);
             dh_{t-1} += R^T da_t
   It writes du (Elman: dpre) and, for the GRU, da, and the initial state's gradient; torch forms dR
   (and dbR) from them in one matmul (and one reduction) over the whole sequence.
   sigma and tanh: ../vecmath.h. No allocation, no threads, no global state: torch owns every
   buffer. Built by modules/kernels/native.py, loaded with ctypes (rnn/cpu.py). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../vecmath.h"   /* exp_f32, sig_f32, tanh_f32, their double versions, axpy_block, ROW_BLOCK */

enum { ACT_TANH = 0, ACT_RELU = 1, ACT_LINEAR = 2 };   /* the Elman kernels' act (cpu.py's _ACT) */

#define ELMAN_FWD(NAME, T, TANH, AXPY_BLOCK)                                                  \
void NAME(int64_t Bn, int64_t L, int64_t H, int64_t act, const T *restrict u,                 \
          const T *restrict RT, const T *restrict h0, T *restrict ys, T *restrict work) {     \
    T *pre = work, *hb = work + ROW_BLOCK * H;        /* per row of a block: pre (H), h (H) */ \
    for (int64_t b0 = 0; b0 < Bn; b0 += ROW_BLOCK) {                                          \
        const int64_t nb = BLOCK_ROWS(Bn, b0);                                                \
        LOAD_ROWS(T, hb, h0, b0, nb, H)                                                       \
        for (int64_t t = 0; t < L; t++) {                                                     \
            for (int64_t r = 0; r < nb; r++)                                                  \
                memcpy(pre + r * H, u + ((b0 + r) * L + t) * H, (size_t)H * sizeof(T));       \
            AXPY_BLOCK(nb, pre, H, hb, H, RT, H, H);                                          \
            for (int64_t r = 0; r < nb; r++) {                                                \
                const T *pr = pre + r * H;                                                    \
                T *h = hb + r * H, *yt = ys + ((b0 + r) * L + t) * H;                         \
                if (act == ACT_RELU) {                                                        \
                    _Pragma("omp simd")                                                       \
                    for (int64_t j = 0; j < H; j++) { T v = pr[j] > 0 ? pr[j] : (T)0; h[j] = v; yt[j] = v; } \
                } else if (act == ACT_LINEAR) {                                               \
                    _Pragma("omp simd")                                                       \
                    for (int64_t j = 0; j < H; j++) { T v = pr[j]; h[j] = v; yt[j] = v; }     \
                } else {                                                                      \
                    _Pragma("omp simd")                                                       \
                    for (int64_t j = 0; j < H; j++) { T v = TANH(pr[j]); h[j] = v; yt[j] = v; } \
                }                                                                             \
            }                                                                                 \
        }                                                                                     \
    }                                                                                         \
}

#define ELMAN_BWD(NAME, T, AXPY_BLOCK)                                                        \
void NAME(int64_t Bn, int64_t L, int64_t H, int64_t act, const T *restrict R,                 \
          const T *restrict ys, const T *restrict dys, const T *restrict dhT,                 \
          T *restrict dpre, T *restrict dh0, T *restrict work) {                              \
    T *dhb = work;                                    /* per row of a block: dh (H) */        \
    for (int64_t b0 = 0; b0 < Bn; b0 += ROW_BLOCK) {                                          \
        const int64_t nb = BLOCK_ROWS(Bn, b0);                                                \
        LOAD_ROWS(T, dhb, dhT, b0, nb, H)                                                     \
        for (int64_t t = L - 1; t >= 0; t--) {                                                \
            for (int64_t r = 0; r < nb; r++) {                                                \
                const int64_t bt = (b0 + r) * L + t;                                          \
                const T *y = ys + bt * H, *dy = dys + bt * H;                                 \
                T *dp = dpre + bt * H, *dh = dhb + r * H;                                     \
                _Pragma("omp simd")                                                           \
                for (int64_t j = 0; j < H; j++) {                                             \
                    T g = dh[j] + dy[j];                                                      \
                    dp[j] = act == ACT_RELU ? (y[j] > 0 ? g : (T)0)                           \
                          : act == ACT_LINEAR ? g : g * ((T)1 - y[j] * y[j]);                 \
                    dh[j] = 0;                                                                \
                }                                                                             \
            }                                                                                 \
            AXPY_BLOCK(nb, dhb, H, dpre + (b0 * L + t) * H, L * H, R, H, H);                  \
        }                                                                                     \
        STORE_ROWS(T, dh0, dhb, b0, nb, H)                                                    \
    }                                                                                         \
}

#define GRU_FWD(NAME, T, SIG, TANH, AXPY_BLOCK)                                               \
void NAME(int64_t Bn, int64_t L, int64_t H, int64_t unused, const T *restrict u,              \
          const T *restrict RT, const T *restrict bR, const T *restrict h0,                   \
          T *restrict ys, T *restrict acts, T *restrict work) {                               \
    (void)unused;                                                                             \
    /* work: 4 H scratch (a step's acts when they are not kept), then per row of a block     \
       pre (3 H), then per row h (H) */                                                       \
    T *pre = work + 4 * H, *hb = work + 4 * H + ROW_BLOCK * 3 * H;                            \
    for (int64_t b0 = 0; b0 < Bn; b0 += ROW_BLOCK) {                                          \
        const int64_t nb = BLOCK_ROWS(Bn, b0);                                                \
        LOAD_ROWS(T, hb, h0, b0, nb, H)                                                       \
        for (int64_t t = 0; t < L; t++) {                                                     \
            for (int64_t r = 0; r < nb; r++) memcpy(pre + r * 3 * H, bR, (size_t)(3 * H) * sizeof(T)); \
            AXPY_BLOCK(nb, pre, 3 * H, hb, H, RT, H, 3 * H);                                  \
            for (int64_t r = 0; r < nb; r++) {                                                \
            const int64_t bt = (b0 + r) * L + t;                                              \
            const T *pr = pre + r * 3 * H;                                                    \
            const T *ut = u + bt * 3 * H;                                                     \
            T *h = hb + r * H;                                                                \
            T *a = acts ? acts + bt * 4 * H : work;                                           \
            T *ar = a, *az = a + H, *an = a + 2 * H, *ahn = a + 3 * H;                        \
            T *yt = ys + bt * H;                                                              \
            _Pragma("omp simd")                                                               \
            for (int64_t j = 0; j < H; j++) {                                                 \
                T r_ = SIG(ut[j] + pr[j]);                                                    \
                T z = SIG(ut[H + j] + pr[H + j]);                                             \
                T hn = pr[2 * H + j];                                                         \
                T n = TANH(ut[2 * H + j] + r_ * hn);                                          \
                T v = ((T)1 - z) * n + z * h[j];                                              \
                ar[j] = r_; az[j] = z; an[j] = n; ahn[j] = hn;                                \
                h[j] = v; yt[j] = v;                                                          \
            }                                                                                 \
            }                                                                                 \
        }                                                                                     \
    }                                                                                         \
}

#define GRU_BWD(NAME, T, AXPY_BLOCK)                                                          \
void NAME(int64_t Bn, int64_t L, int64_t H, int64_t unused, const T *restrict R,              \
          const T *restrict h0, const T *restrict ys, const T *restrict acts,                 \
          const T *restrict dys, const T *restrict dhT, T *restrict du, T *restrict da,       \
          T *restrict dh0, T *restrict work) {                                                \
    (void)unused;                                                                             \
    /* work: per row of a block dh (H), then H zeros (the caller zeroes them) */             \
    T *dhb = work, *zeros = work + ROW_BLOCK * H;                                             \
    for (int64_t b0 = 0; b0 < Bn; b0 += ROW_BLOCK) {                                          \
        const int64_t nb = BLOCK_ROWS(Bn, b0);                                                \
        LOAD_ROWS(T, dhb, dhT, b0, nb, H)                                                     \
        for (int64_t t = L - 1; t >= 0; t--) {                                                \
            for (int64_t r = 0; r < nb; r++) {                                                \
            const int64_t b = b0 + r, bt = b * L + t;                                         \
            const T *a = acts + bt * 4 * H;                                                   \
            const T *ar = a, *az = a + H, *an = a + 2 * H, *ahn = a + 3 * H;                  \
            const T *hp = t ? ys + (bt - 1) * H : (h0 ? h0 + b * H : zeros);                  \
            const T *dy = dys + bt * H;                                                       \
            T *dut = du + bt * 3 * H, *dat = da + bt * 3 * H, *dh = dhb + r * H;              \
            _Pragma("omp simd")                                                               \
            for (int64_t j = 0; j < H; j++) {                                                 \
                T g = dh[j] + dy[j];                                                          \
                T r_ = ar[j], z = az[j], n = an[j];                                           \
                T dn = g * ((T)1 - z), dz = g * (hp[j] - n);                                  \
                T d_n = dn * ((T)1 - n * n);                                                  \
                T d_r = d_n * ahn[j] * r_ * ((T)1 - r_);                                      \
                T d_z = dz * z * ((T)1 - z);                                                  \
                dut[j] = d_r; dut[H + j] = d_z; dut[2 * H + j] = d_n;                         \
                dat[j] = d_r; dat[H + j] = d_z; dat[2 * H + j] = d_n * r_;                    \
                dh[j] = g * z;                                                                \
            }                                                                                 \
            }                                                                                 \
            AXPY_BLOCK(nb, dhb, H, da + (b0 * L + t) * 3 * H, L * 3 * H, R, 3 * H, H);        \
        }                                                                                     \
        STORE_ROWS(T, dh0, dhb, b0, nb, H)                                                    \
    }                                                                                         \
}

ELMAN_FWD(elman_fwd_f32, float, tanh_f32, axpy_block_f32)
ELMAN_BWD(elman_bwd_f32, float, axpy_block_f32)
GRU_FWD(gru_fwd_f32, float, sig_f32, tanh_f32, axpy_block_f32)
GRU_BWD(gru_bwd_f32, float, axpy_block_f32)

ELMAN_FWD(elman_fwd_f64, double, tanh_f64, axpy_block_f64)
ELMAN_BWD(elman_bwd_f64, double, axpy_block_f64)
GRU_FWD(gru_fwd_f64, double, sig_f64, tanh_f64, axpy_block_f64)
GRU_BWD(gru_bwd_f64, double, axpy_block_f64)

/* the ABI version, so that a caller can tell builds apart */
int claimcheck_rnn_abi(void) { return 3; }

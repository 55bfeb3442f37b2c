/* CPU kernel of the LSTM recurrence (modules/kernels/lstm/: Greff et al.'s vanilla LSTM and its
   variants, without full gate recurrence; naive.py has the equations).

   Layout, contiguous: u (B, T, nH) with rows [z, gates...] (nH = (1 + gates) H), RT (H, nH) the
   recurrent matrix transposed (forward), R (nH, H) itself (backward), peep (3, H) (rows i, f, o;
   zeros where absent), y0, c0, yT, cT (B, H); ys, cs (B, T, H): the output and the cell after each
   step; acts (B, T, 5, H): z, i, f, o and h(c) after each step (what the backward reads).
   acts and cs may be NULL (no gradient wanted: a scratch row of `work` takes them, so memory stays
   that of the state however long the sequence). The batch's rows go through time ROW_BLOCK at a
   time (four), their states in L1: each step's R y_{t-1} for the block is one axpy_block (../vecmath.h),
   which reads R once for the four rows and sums each row's terms in the order a row alone would,
   so a row's numbers do not depend on the rows beside it. The gates are vectorized over H.

   Backward, per row and step in reverse, with dy and dc the carried gradients of y_t and c_t:
       dy += dys[t];  do = dy h(c_t);  dc += dy o h'(c_t);  dpre_o = do o (1 - o);  dc += dpre_o p_o
       dz = dc i;  di = dc z;  df = dc c_{t-1};  dc_{t-1} = dc f;  coupled: di -= df
       dpre_z = dz g'(pre_z);  dpre_i = di i (1 - i);  dpre_f = df f (1 - f);  dc_{t-1} += dpre_i p_i + dpre_f p_f
       dy_{t-1} = R^T dpre
   It writes dpre (B, T, nH) and the initial states' gradients; torch forms dR, the peepholes'
   gradients and du from them (one matmul and two reductions over the whole sequence).
   sigma and tanh: ../vecmath.h (float: the vectorizable Cephes exp; double: libm).
   No allocation, no threads, no global state: torch owns every buffer. Built by
   modules/kernels/native.py, loaded with ctypes (lstm/cpu.py). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../vecmath.h"   /* exp_f32, sig_f32, tanh_f32, their double versions, axpy_block, ROW_BLOCK */

enum { IG = 1, FG = 2, OG = 4, IACT = 8, OACT = 16, COUPLED = 32 };

/* the flags, the row (in units of H) of each gate present in u and R (-1: absent), the width
   nH of a step's pre-activations, and the peephole rows: what forward and backward share */
#define GATE_ROWS(T)                                                                          \
    const int ig = flags & IG, fg = flags & FG, og = flags & OG, coupled = flags & COUPLED;   \
    const int iact = flags & IACT, oact = flags & OACT;                                       \
    const int64_t oi = ig ? 1 : -1, of = (fg && !coupled) ? 1 + (ig ? 1 : 0) : -1;            \
    const int64_t oo = og ? 1 + (ig ? 1 : 0) + ((fg && !coupled) ? 1 : 0) : -1;               \
    const int64_t nH = H * (1 + (oi > 0) + (of > 0) + (oo > 0));                              \
    const T *pi = peep, *pf = peep + H, *po = peep + 2 * H;

#define LSTM_FWD(NAME, T, SIG, TANH, AXPY_BLOCK)                                              \
void NAME(int64_t Bn, int64_t L, int64_t H, int64_t flags, const T *restrict u,               \
          const T *restrict RT, const T *restrict peep, const T *restrict y0,                 \
          const T *restrict c0, T *restrict ys, T *restrict cs, T *restrict acts,             \
          T *restrict yT, T *restrict cT, T *restrict work) {                                 \
    GATE_ROWS(T)                                                                              \
    const int64_t si_row = oi > 0 ? oi : 0, sf_row = of > 0 ? of : 0, so_row = oo > 0 ? oo : 0; \
    /* the flags as 0/1 multipliers: a blend k a + (1 - k) b is exact for k in {0, 1}, and it \
       vectorizes where a select on an integer flag does not */                               \
    const T kig = ig ? 1 : 0, kfg = fg ? 1 : 0, kog = og ? 1 : 0, kc = coupled ? 1 : 0;       \
    const T kiact = iact ? 1 : 0, koact = oact ? 1 : 0;                                        \
    /* work: 6 H scratch (the step's values when the backward's are not kept), then, for each \
       of the ROW_BLOCK rows stepped together, pre (nH), y (H) and c (H) */                   \
    const int keep = acts != NULL && cs != NULL;                                              \
    T *pre = work + 6 * H, *yb = pre + ROW_BLOCK * nH, *cb = yb + ROW_BLOCK * H;              \
    for (int64_t b0 = 0; b0 < Bn; b0 += ROW_BLOCK) {                                          \
        const int64_t nb = BLOCK_ROWS(Bn, b0);                                                \
        LOAD_ROWS(T, yb, y0, b0, nb, H)                                                       \
        LOAD_ROWS(T, cb, c0, b0, nb, H)                                                       \
        for (int64_t t = 0; t < L; t++) {                                                     \
            for (int64_t r = 0; r < nb; r++)                                                  \
                memcpy(pre + r * nH, u + ((b0 + r) * L + t) * nH, (size_t)nH * sizeof(T));   \
            AXPY_BLOCK(nb, pre, nH, yb, H, RT, H, nH);          /* pre[r] += R y_{t-1}[r] */  \
            for (int64_t r = 0; r < nb; r++) {                                                \
            const int64_t bt = (b0 + r) * L + t;                                              \
            const T *pr = pre + r * nH;                                                       \
            T *y = yb + r * H, *c = cb + r * H;                                               \
            T *a = keep ? acts + bt * 5 * H : work;       /* not kept: written over, unread */ \
            T *az = a, *ai = a + H, *af = a + 2 * H, *ao = a + 3 * H, *ah = a + 4 * H;        \
            T *yt = ys + bt * H, *ct = keep ? cs + bt * H : work + 5 * H;                     \
            _Pragma("omp simd")                                                               \
            for (int64_t h = 0; h < H; h++) {                                                 \
                /* every function computed, then blended: no call under a branch, so the    \
                   loop vectorizes (an absent gate reads the z row, and its value is unused) */ \
                T cp = c[h];                                                                  \
                T tz = TANH(pr[h]);                                                           \
                T si = SIG(pr[si_row * H + h] + pi[h] * cp);                                  \
                T sf = SIG(pr[sf_row * H + h] + pf[h] * cp);                                  \
                T z = kiact * tz + ((T)1 - kiact) * pr[h];                                    \
                T i = kig * si + ((T)1 - kig);                                                \
                T f = kc * ((T)1 - i) + ((T)1 - kc) * (kfg * sf + ((T)1 - kfg));              \
                T cn = z * i + cp * f;                                                        \
                T so = SIG(pr[so_row * H + h] + po[h] * cn);                                  \
                T tc = TANH(cn);                                                              \
                T o = kog * so + ((T)1 - kog);                                                \
                T hc = koact * tc + ((T)1 - koact) * cn;                                      \
                T yv = hc * o;                                                                \
                az[h] = z; ai[h] = i; af[h] = f; ao[h] = o; ah[h] = hc;                       \
                c[h] = cn; ct[h] = cn; y[h] = yv; yt[h] = yv;                                 \
            }                                                                                 \
            }                                                                                 \
        }                                                                                     \
        STORE_ROWS(T, yT, yb, b0, nb, H)                                                      \
        STORE_ROWS(T, cT, cb, b0, nb, H)                                                      \
    }                                                                                         \
}

#define LSTM_BWD(NAME, T, AXPY_BLOCK)                                                         \
void NAME(int64_t Bn, int64_t L, int64_t H, int64_t flags, const T *restrict R,               \
          const T *restrict peep, const T *restrict c0, const T *restrict cs,                 \
          const T *restrict acts, const T *restrict dys, const T *restrict dyT,               \
          const T *restrict dcT, T *restrict dpre, T *restrict dy0, T *restrict dc0,          \
          T *restrict work) {                                                                 \
    GATE_ROWS(T)                                                                              \
    /* work: dy and dc of the ROW_BLOCK rows stepped together, then H zeros (the caller's) */ \
    T *dyb = work, *dcb = work + ROW_BLOCK * H, *zeros = work + 2 * ROW_BLOCK * H;           \
    for (int64_t b0 = 0; b0 < Bn; b0 += ROW_BLOCK) {                                          \
        const int64_t nb = BLOCK_ROWS(Bn, b0);                                                \
        LOAD_ROWS(T, dyb, dyT, b0, nb, H)                                                     \
        LOAD_ROWS(T, dcb, dcT, b0, nb, H)                                                     \
        for (int64_t t = L - 1; t >= 0; t--) {                                                \
            for (int64_t r = 0; r < nb; r++) {                                                \
            const int64_t b = b0 + r, bt = b * L + t;                                         \
            T *dy = dyb + r * H, *dc = dcb + r * H;                                           \
            const T *a = acts + bt * 5 * H;                                                   \
            const T *az = a, *ai = a + H, *af = a + 2 * H, *ao = a + 3 * H, *ah = a + 4 * H;  \
            const T *cp = t ? cs + (bt - 1) * H : (c0 ? c0 + b * H : zeros);                  \
            const T *dyt = dys + bt * H;                                                      \
            T *dp = dpre + bt * nH;                                                           \
            _Pragma("omp simd")                                                               \
            for (int64_t h = 0; h < H; h++) {                                                 \
                T g = dy[h] + dyt[h];                                                         \
                T o = ao[h], hc = ah[h], z = az[h], i = ai[h], f = af[h];                     \
                T d_o = g * hc;                                                               \
                T dcn = dc[h] + g * o * (oact ? (T)1 - hc * hc : (T)1);                       \
                T dpo = d_o * o * ((T)1 - o);                                                 \
                if (og) { dcn += dpo * po[h]; dp[oo * H + h] = dpo; }                         \
                T dz = dcn * i, di = dcn * z, df = dcn * cp[h], dcp = dcn * f;                \
                if (coupled) di -= df;                                                        \
                dp[h] = dz * (iact ? (T)1 - z * z : (T)1);                                    \
                if (ig) { T dpi = di * i * ((T)1 - i); dp[oi * H + h] = dpi; dcp += dpi * pi[h]; } \
                if (fg && !coupled) { T dpf = df * f * ((T)1 - f); dp[of * H + h] = dpf; dcp += dpf * pf[h]; } \
                dc[h] = dcp;                                                                  \
                dy[h] = 0;                                                                    \
            }                                                                                 \
            }                                                                                 \
            /* dy[r] = R^T dpre[r], the rows' dpre a sequence (L nH) apart */                 \
            AXPY_BLOCK(nb, dyb, H, dpre + (b0 * L + t) * nH, L * nH, R, nH, H);              \
        }                                                                                     \
        STORE_ROWS(T, dy0, dyb, b0, nb, H)                                                    \
        STORE_ROWS(T, dc0, dcb, b0, nb, H)                                                    \
    }                                                                                         \
}

LSTM_FWD(lstm_fwd_f32, float, sig_f32, tanh_f32, axpy_block_f32)
LSTM_FWD(lstm_fwd_f64, double, sig_f64, tanh_f64, axpy_block_f64)
LSTM_BWD(lstm_bwd_f32, float, axpy_block_f32)
LSTM_BWD(lstm_bwd_f64, double, axpy_block_f64)

/* the ABI version, so that a caller can tell builds apart */
int claimcheck_lstm_abi(void) { return 2; }

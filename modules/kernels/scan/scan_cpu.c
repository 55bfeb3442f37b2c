/* CPU kernel for the first-order linear recurrence h_t = a_t * h_{t-1} + x_t (modules/kernels/scan/).

   Layout: contiguous (B, L, C): batch, time, channels (every trailing dim of the torch tensor
   flattened into C). Complex tensors are interleaved (re, im) pairs, as torch stores them.
   One pass over time per batch row, with the C channels of a time step in the inner loop, so
   the compiler vectorizes across channels and each step reads the previous row from L1.

   Forward:  h_t = a_t h_{t-1} + x_t,  h_{-1} = h0 (or 0).
   Backward: g_t = dh_t + conj(a_{t+1}) g_{t+1}  (g_{L-1} = dh_{L-1} + dh_last),
             da_t = g_t conj(h_{t-1}),  dx_t = g_t,  dh0 = conj(a_0) g_0.
   conj because torch's complex gradients are conjugate Wirtinger derivatives.

   No allocation, no threads, no global state: torch owns every buffer. Built by
   modules/kernels/native.py with the machine's C compiler and loaded with ctypes (scan/cpu.py). */
#include <stddef.h>
#include <stdint.h>

#define REAL_FWD(NAME, T)                                                                     \
void NAME(int64_t B, int64_t L, int64_t C, const T *restrict a, const T *restrict x,          \
          const T *restrict h0, T *restrict h) {                                              \
    for (int64_t b = 0; b < B; b++) {                                                         \
        const T *ab = a + b * L * C, *xb = x + b * L * C;                                     \
        T *hb = h + b * L * C;                                                                \
        if (h0) {                                                                             \
            const T *p = h0 + b * C;                                                          \
            for (int64_t c = 0; c < C; c++) hb[c] = ab[c] * p[c] + xb[c];                     \
        } else {                                                                              \
            for (int64_t c = 0; c < C; c++) hb[c] = xb[c];                                    \
        }                                                                                     \
        for (int64_t t = 1; t < L; t++) {                                                     \
            const T *at = ab + t * C, *xt = xb + t * C, *hp = hb + (t - 1) * C;               \
            T *ht = hb + t * C;                                                               \
            for (int64_t c = 0; c < C; c++) ht[c] = at[c] * hp[c] + xt[c];                    \
        }                                                                                     \
    }                                                                                         \
}

/* one reverse pass: g_t, then da_t from it while both rows are in L1 */
#define REAL_BWD(NAME, T)                                                                     \
void NAME(int64_t B, int64_t L, int64_t C, const T *restrict a, const T *restrict h,          \
          const T *restrict h0, const T *restrict dh, const T *restrict dh_last,              \
          T *restrict g, T *restrict da, T *restrict dh0) {                                   \
    for (int64_t b = 0; b < B; b++) {                                                         \
        const T *ab = a + b * L * C, *hb = h + b * L * C, *db = dh + b * L * C;               \
        T *gb = g + b * L * C, *dab = da ? da + b * L * C : NULL;                             \
        const T *p0 = h0 ? h0 + b * C : NULL;                                                 \
        for (int64_t t = L - 1; t >= 0; t--) {                                                \
            const T *dt = db + t * C;                                                         \
            T *gt = gb + t * C;                                                               \
            if (t == L - 1) {                                                                 \
                const T *s = dh_last ? dh_last + b * C : NULL;                                \
                for (int64_t c = 0; c < C; c++) gt[c] = s ? dt[c] + s[c] : dt[c];             \
            } else {                                                                          \
                const T *an = ab + (t + 1) * C, *gn = gt + C;                                 \
                for (int64_t c = 0; c < C; c++) gt[c] = an[c] * gn[c] + dt[c];                \
            }                                                                                 \
            if (!dab) continue;                                                               \
            T *dat = dab + t * C;                                                             \
            const T *hp = t ? hb + (t - 1) * C : p0;                                          \
            if (hp) for (int64_t c = 0; c < C; c++) dat[c] = gt[c] * hp[c];                   \
            else for (int64_t c = 0; c < C; c++) dat[c] = (T)0;                               \
        }                                                                                     \
        if (dh0) {                                                                            \
            T *o = dh0 + b * C;                                                               \
            for (int64_t c = 0; c < C; c++) o[c] = ab[c] * gb[c];                             \
        }                                                                                     \
    }                                                                                         \
}

/* complex: every pointer is to (re, im) pairs; C counts complex channels */
#define CPLX_FWD(NAME, T)                                                                     \
void NAME(int64_t B, int64_t L, int64_t C, const T *restrict a, const T *restrict x,          \
          const T *restrict h0, T *restrict h) {                                              \
    for (int64_t b = 0; b < B; b++) {                                                         \
        const T *ab = a + 2 * b * L * C, *xb = x + 2 * b * L * C;                             \
        T *hb = h + 2 * b * L * C;                                                            \
        if (h0) {                                                                             \
            const T *p = h0 + 2 * b * C;                                                      \
            for (int64_t c = 0; c < C; c++) {                                                 \
                T ar = ab[2 * c], ai = ab[2 * c + 1], pr = p[2 * c], pi = p[2 * c + 1];       \
                hb[2 * c] = ar * pr - ai * pi + xb[2 * c];                                    \
                hb[2 * c + 1] = ar * pi + ai * pr + xb[2 * c + 1];                            \
            }                                                                                 \
        } else {                                                                              \
            for (int64_t c = 0; c < 2 * C; c++) hb[c] = xb[c];                                \
        }                                                                                     \
        for (int64_t t = 1; t < L; t++) {                                                     \
            const T *at = ab + 2 * t * C, *xt = xb + 2 * t * C, *hp = hb + 2 * (t - 1) * C;   \
            T *ht = hb + 2 * t * C;                                                           \
            for (int64_t c = 0; c < C; c++) {                                                 \
                T ar = at[2 * c], ai = at[2 * c + 1], pr = hp[2 * c], pi = hp[2 * c + 1];     \
                ht[2 * c] = ar * pr - ai * pi + xt[2 * c];                                    \
                ht[2 * c + 1] = ar * pi + ai * pr + xt[2 * c + 1];                            \
            }                                                                                 \
        }                                                                                     \
    }                                                                                         \
}

/* z = u * conj(v) + w, on (re, im) pairs */
#define CMUL_CONJ_ADD(zr, zi, ur, ui, vr, vi, wr, wi)                                         \
    do { zr = (ur) * (vr) + (ui) * (vi) + (wr); zi = (ui) * (vr) - (ur) * (vi) + (wi); } while (0)

#define CPLX_BWD(NAME, T)                                                                     \
void NAME(int64_t B, int64_t L, int64_t C, const T *restrict a, const T *restrict h,          \
          const T *restrict h0, const T *restrict dh, const T *restrict dh_last,              \
          T *restrict g, T *restrict da, T *restrict dh0) {                                   \
    for (int64_t b = 0; b < B; b++) {                                                         \
        int64_t o = 2 * b * L * C;                                                            \
        const T *ab = a + o, *hb = h + o, *db = dh + o;                                       \
        T *gb = g + o, *dab = da ? da + o : NULL;                                             \
        const T *p0 = h0 ? h0 + 2 * b * C : NULL;                                             \
        for (int64_t t = L - 1; t >= 0; t--) {                                                \
            const T *dt = db + 2 * t * C;                                                     \
            T *gt = gb + 2 * t * C;                                                           \
            if (t == L - 1) {                                                                 \
                const T *s = dh_last ? dh_last + 2 * b * C : NULL;                            \
                for (int64_t c = 0; c < 2 * C; c++) gt[c] = s ? dt[c] + s[c] : dt[c];         \
            } else {                                                                          \
                /* g_t = conj(a_{t+1}) g_{t+1} + dh_t = g_{t+1} conj(a_{t+1}) + dh_t */       \
                const T *an = ab + 2 * (t + 1) * C, *gn = gt + 2 * C;                         \
                for (int64_t c = 0; c < C; c++)                                               \
                    CMUL_CONJ_ADD(gt[2 * c], gt[2 * c + 1], gn[2 * c], gn[2 * c + 1],         \
                                  an[2 * c], an[2 * c + 1], dt[2 * c], dt[2 * c + 1]);        \
            }                                                                                 \
            if (!dab) continue;                                                               \
            T *dat = dab + 2 * t * C;                                                         \
            const T *hp = t ? hb + 2 * (t - 1) * C : p0;                                      \
            if (hp) {                                                                         \
                for (int64_t c = 0; c < C; c++)                                               \
                    CMUL_CONJ_ADD(dat[2 * c], dat[2 * c + 1], gt[2 * c], gt[2 * c + 1],       \
                                  hp[2 * c], hp[2 * c + 1], (T)0, (T)0);                      \
            } else {                                                                          \
                for (int64_t c = 0; c < 2 * C; c++) dat[c] = (T)0;                            \
            }                                                                                 \
        }                                                                                     \
        if (dh0) {                                                                            \
            T *q = dh0 + 2 * b * C;                                                           \
            for (int64_t c = 0; c < C; c++)                                                   \
                CMUL_CONJ_ADD(q[2 * c], q[2 * c + 1], gb[2 * c], gb[2 * c + 1],               \
                              ab[2 * c], ab[2 * c + 1], (T)0, (T)0);                          \
        }                                                                                     \
    }                                                                                         \
}

REAL_FWD(scan_fwd_f32, float)
REAL_FWD(scan_fwd_f64, double)
CPLX_FWD(scan_fwd_c64, float)
CPLX_FWD(scan_fwd_c128, double)
REAL_BWD(scan_bwd_f32, float)
REAL_BWD(scan_bwd_f64, double)
CPLX_BWD(scan_bwd_c64, float)
CPLX_BWD(scan_bwd_c128, double)

/* the ABI version native.py checks, so a stale cached build is never called */
int claimcheck_scan_abi(void) { return 1; }

/* CPU kernel of the short causal depthwise convolution over time (Mamba's and Mamba-2's conv1d;
   modules/kernels/causal_conv/: naive.py has the torch form).

   Layout, contiguous, channels last (the models' own layout, so no transpose is made): x, y, dx, dy
   (B, T, C); wT (W, C), the taps transposed (tap k multiplies x_{t - (W - 1) + k}); bias (C) or NULL.
       forward    y[b, t, c] = bias[c] + sum_k wT[k, c] x[b, t - (W - 1) + k, c]     (x before t = 0: zero)
       backward   dx[b, s, c] = sum_k wT[k, c] dy[b, s + (W - 1) - k, c]            (dy after T - 1: zero)
                  dwT[k, c] += sum_{b, t} dy[b, t, c] x[b, t - (W - 1) + k, c];  dbias[c] += sum_{b, t} dy[b, t, c]
   Every loop runs over the channels, vectorized; a step reads W rows of x, which stay in L1.
   torch's depthwise conv1d on a CPU spent 1.3 ms on the backward of one Mamba layer's (32, 42,
   128) convolution, most of a 1.7 ms forward and backward. dwT and dbias accumulate into the
   caller's zeroed buffers, in float for float inputs (a sum over B T terms, as torch's is).
   No allocation, no threads, no global state. Built by modules/kernels/native.py, loaded with
   ctypes (causal_conv/cpu.py). */
#include <stddef.h>
#include <stdint.h>

#define CCONV_FWD(NAME, T)                                                                    \
void NAME(int64_t Bn, int64_t L, int64_t C, int64_t W, const T *restrict x,                   \
          const T *restrict wT, const T *restrict bias, T *restrict y) {                      \
    for (int64_t b = 0; b < Bn; b++) {                                                        \
        for (int64_t t = 0; t < L; t++) {                                                     \
            T *yt = y + (b * L + t) * C;                                                      \
            if (bias) { _Pragma("omp simd") for (int64_t c = 0; c < C; c++) yt[c] = bias[c]; } \
            else { _Pragma("omp simd") for (int64_t c = 0; c < C; c++) yt[c] = 0; }           \
            for (int64_t k = 0; k < W; k++) {                                                 \
                const int64_t s = t - (W - 1) + k;                                            \
                if (s < 0) continue;                                                          \
                const T *xs = x + (b * L + s) * C, *wk = wT + k * C;                          \
                _Pragma("omp simd")                                                           \
                for (int64_t c = 0; c < C; c++) yt[c] += wk[c] * xs[c];                       \
            }                                                                                 \
        }                                                                                     \
    }                                                                                         \
}

#define CCONV_BWD(NAME, T)                                                                    \
void NAME(int64_t Bn, int64_t L, int64_t C, int64_t W, const T *restrict x,                   \
          const T *restrict wT, const T *restrict dy, T *restrict dx, T *restrict dwT,        \
          T *restrict dbias) {                                                                \
    for (int64_t b = 0; b < Bn; b++) {                                                        \
        for (int64_t s = 0; s < L; s++) {                                                     \
            T *dxs = dx + (b * L + s) * C;                                                    \
            const T *xs = x + (b * L + s) * C, *dys = dy + (b * L + s) * C;                   \
            _Pragma("omp simd")                                                               \
            for (int64_t c = 0; c < C; c++) dxs[c] = 0;                                       \
            for (int64_t k = 0; k < W; k++) {                                                 \
                const int64_t t = s + (W - 1) - k;     /* the output that tap k reads x_s for */ \
                if (t >= L) continue;                                                         \
                const T *dyt = dy + (b * L + t) * C, *wk = wT + k * C;                        \
                T *dwk = dwT + k * C;                                                         \
                _Pragma("omp simd")                                                           \
                for (int64_t c = 0; c < C; c++) { dxs[c] += wk[c] * dyt[c]; dwk[c] += dyt[c] * xs[c]; } \
            }                                                                                 \
            if (dbias) { _Pragma("omp simd") for (int64_t c = 0; c < C; c++) dbias[c] += dys[c]; } \
        }                                                                                     \
    }                                                                                         \
}

CCONV_FWD(cconv_fwd_f32, float)
CCONV_FWD(cconv_fwd_f64, double)
CCONV_BWD(cconv_bwd_f32, float)
CCONV_BWD(cconv_bwd_f64, double)

/* the ABI version, so that a caller can tell builds apart */
int claimcheck_cconv_abi(void) { return 1; }

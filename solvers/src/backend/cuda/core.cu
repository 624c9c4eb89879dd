// The CUDA backend's kernels (`solvers/src/backend/cuda/device.rs` launches them): the
// elementwise passes and the Runge–Kutta term lists. Every element is computed with the
// CPU backend's arithmetic (`elementwise.h`, and the order of operations noted per
// kernel), so a column gives the same bits on both. Compiled by NVRTC with
// `--fmad=false`; `scripts/check_kernels.py` compiles them in CI and rejects spills and
// fused multiply-adds outside the out-of-line `nd_libm_*` functions of `elementwise.h` (the
// callers of the platform's exp / log1p, which fuse inside on the GPU).
#include "elementwise.h"

#define ND_MAX_TERMS 16

// A Runge–Kutta combination (`Terms` in solvers/src/backend/terms.rs, `#[repr(C)]`).
template <typename T> struct nd_terms {
    nd_u32 stages[ND_MAX_TERMS];
    T weights[ND_MAX_TERMS];
    nd_u32 len;
};

#define ND_GRID_STRIDE(i, n)                                                                 \
    for (nd_u64 i = (nd_u64)blockIdx.x * blockDim.x + threadIdx.x; i < (n);                 \
         i += (nd_u64)blockDim.x * gridDim.x)

#define ND_KERNELS(T, SUF)                                                                   \
    /* out = phi(x) (in place when out == x). */                                             \
    extern "C" __global__ void nd_activate_##SUF(int act, double cap, nd_u64 n,              \
                                                 const T *x, T *out) {                       \
        ND_GRID_STRIDE(i, n) { out[i] = nd_activate_##SUF(act, cap, x[i]); }   \
    }                                                                                        \
    /* out = phi'(x) from x and phi. */                                                      \
    extern "C" __global__ void nd_activate_grad_##SUF(int act, double cap, nd_u64 n,         \
                                                      const T *x, const T *phi, T *out) {    \
        ND_GRID_STRIDE(i, n) {                                                               \
            out[i] = nd_activate_grad_##SUF(act, cap, x[i], phi[i]);           \
        }                                                                                    \
    }                                                                                        \
    /* y += alpha x. */                                                                      \
    extern "C" __global__ void nd_axpy_##SUF(nd_u64 n, T alpha, const T *x, T *y) {          \
        ND_GRID_STRIDE(i, n) { y[i] += alpha * x[i]; }                                       \
    }                                                                                        \
    /* out_c = x_c + sum_t (h[c] w_t) k_{s_t, c} over the columns with h[c] != 0, the     \
       terms in order (cpu.rs `combine_columns`). */                                         \
    extern "C" __global__ void nd_combine_columns_##SUF(nd_terms<T> terms, nd_u64 dim,       \
                                                        nd_u64 cols, const T *h, const T *x, \
                                                        const T *k, nd_u64 stride, T *out) { \
        ND_GRID_STRIDE(i, dim * cols) {                                                      \
            T hc = h[i / dim];                                                               \
            if (hc == (T)0) continue;                                                        \
            T acc = x[i];                                                                    \
            for (nd_u32 t = 0; t < terms.len; ++t) {                                         \
                T c = hc * terms.weights[t];                                                 \
                acc += c * k[terms.stages[t] * stride + i];                                  \
            }                                                                                \
            out[i] = acc;                                                                    \
        }                                                                                    \
    }                                                                                        \
    /* The weighted RMS error norm per column with h[c] != 0, one thread per column, the   \
       elements in order (cpu.rs `error_norm_column`). */                                    \
    extern "C" __global__ void nd_error_norms_##SUF(nd_terms<T> terms, nd_u64 dim,           \
                                                    nd_u64 cols, const T *h, T rtol, T atol, \
                                                    const T *x, const T *x_new, const T *k,  \
                                                    nd_u64 stride, T *out) {                 \
        ND_GRID_STRIDE(c, cols) {                                                            \
            T hc = h[c];                                                                     \
            if (hc == (T)0) continue;                                                        \
            T acc = (T)0;                                                                    \
            for (nd_u64 e = 0; e < dim; ++e) {                                               \
                nd_u64 i = c * dim + e;                                                      \
                T d = (T)0;                                                                  \
                for (nd_u32 t = 0; t < terms.len; ++t) {                                     \
                    d += terms.weights[t] * k[terms.stages[t] * stride + i];                 \
                }                                                                            \
                T sc = atol + rtol * nd_max_abs_##SUF(x[i], x_new[i]);                       \
                T q = hc * d / sc;                                                           \
                acc += q * q;                                                                \
            }                                                                                \
            out[c] = nd_sqrt_##SUF(acc / (T)dim);                                            \
        }                                                                                    \
    }                                                                                        \
    /* The index of the first non-finite value per column with h[c] != 0, or -1          \
       (cpu.rs `non_finite`). */                                                             \
    extern "C" __global__ void nd_non_finite_##SUF(nd_u64 dim, nd_u64 cols, const T *h,      \
                                                   const T *x, T *out) {                     \
        ND_GRID_STRIDE(c, cols) {                                                            \
            if (h[c] == (T)0) continue;                                                      \
            T first = (T)-1;                                                                 \
            for (nd_u64 e = 0; e < dim; ++e) {                                               \
                if (!isfinite(x[c * dim + e])) {                                             \
                    first = (T)e;                                                            \
                    break;                                                                   \
                }                                                                            \
            }                                                                                \
            out[c] = first;                                                                  \
        }                                                                                    \
    }

ND_KERNELS(float, f32)
ND_KERNELS(double, f64)

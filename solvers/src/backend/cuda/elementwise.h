// Element arithmetic of the CUDA kernels, operation for operation the CPU backend's
// (`solvers/src/backend/kernels.rs`, `cpu.rs`): the same constants, the same order of
// operations, no fused multiply-add (the kernels are compiled with `--fmad=false`; the
// CPU code is never contracted). NVRTC compiles it into every kernel source; the tests
// also compile it with the host C compiler (`-ffp-contract=off`) and compare it bit for
// bit with the Rust code (`tests/elementwise_header.rs`).
#ifndef NEURODE_ELEMENTWISE_H
#define NEURODE_ELEMENTWISE_H

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define ND_FN __device__ __forceinline__
#define ND_LIBM_FN __device__ __noinline__
typedef unsigned long long nd_u64;
typedef unsigned int nd_u32;
ND_FN nd_u64 nd_bits_f64(double x) { return (nd_u64)__double_as_longlong(x); }
ND_FN double nd_from_bits_f64(nd_u64 b) { return __longlong_as_double((long long)b); }
ND_FN nd_u32 nd_bits_f32(float x) { return (nd_u32)__float_as_int(x); }
ND_FN float nd_from_bits_f32(nd_u32 b) { return __int_as_float((int)b); }
#else
#include <math.h>
#include <stdint.h>
#include <string.h>
#define ND_FN static inline
#define ND_LIBM_FN static
typedef uint64_t nd_u64;
typedef uint32_t nd_u32;
ND_FN nd_u64 nd_bits_f64(double x) { nd_u64 b; memcpy(&b, &x, 8); return b; }
ND_FN double nd_from_bits_f64(nd_u64 b) { double x; memcpy(&x, &b, 8); return x; }
ND_FN nd_u32 nd_bits_f32(float x) { nd_u32 b; memcpy(&b, &x, 4); return b; }
ND_FN float nd_from_bits_f32(nd_u32 b) { float x; memcpy(&x, &b, 4); return x; }
#endif

// The activations, numbered as the kernels receive them (`Activation` in Rust).
#define ND_TANH 0
#define ND_SIGMOID 1
#define ND_SOFTPLUS 2
#define ND_RELU 3
#define ND_CLIPPED_RELU 4
#define ND_CLIPPED_SOFTPLUS 5
#define ND_IDENTITY 6

// exp(y) for y in [-708, 0]: round-to-nearest range reduction by the 1.5 * 2^52 shift,
// Cody-Waite ln 2, Taylor series to degree 13 (kernels.rs `exp_neg_f64`).
ND_FN double nd_exp_neg_f64(double y) {
    const double shift = 6755399441055744.0;
    const double ln2_hi = 6.93147180369123816490e-01;
    const double ln2_lo = 1.90821492927058770002e-10;
    const double log2_e = 1.4426950408889634074;
    double kf = y * log2_e + shift;
    nd_u64 bits = nd_bits_f64(kf);
    double n = kf - shift;
    double r = (y - n * ln2_hi) - n * ln2_lo;
    const double c[14] = {1.0, 1.0, 1.0 / 2.0, 1.0 / 6.0, 1.0 / 24.0, 1.0 / 120.0,
                          1.0 / 720.0, 1.0 / 5040.0, 1.0 / 40320.0, 1.0 / 362880.0,
                          1.0 / 3628800.0, 1.0 / 39916800.0, 1.0 / 479001600.0,
                          1.0 / 6227020800.0};
    double p = c[13];
    for (int i = 12; i >= 0; --i) p = p * r + c[i];
    double scale = nd_from_bits_f64((bits + 1023ull) << 52);
    return p * scale;
}

// exp(y) for y in [-87, 0], f32 (kernels.rs `exp_neg_f32`).
ND_FN float nd_exp_neg_f32(float y) {
    const float shift = 12582912.0f;
    const float ln2_hi = 0.693359375f;
    const float ln2_lo = -2.1219444e-4f;
    const float log2_e = 1.44269504088896340736f;
    float kf = y * log2_e + shift;
    nd_u32 bits = nd_bits_f32(kf);
    float n = kf - shift;
    float r = (y - n * ln2_hi) - n * ln2_lo;
    const float c[9] = {1.0f, 1.0f, 1.0f / 2.0f, 1.0f / 6.0f, 1.0f / 24.0f, 1.0f / 120.0f,
                        1.0f / 720.0f, 1.0f / 5040.0f, 1.0f / 40320.0f};
    float p = c[8];
    for (int i = 7; i >= 0; --i) p = p * r + c[i];
    float scale = nd_from_bits_f32((bits + 127u) << 23);
    return p * scale;
}

// tanh, f64: Cephes' rational function below 0.625, (1 - e) / (1 + e) with e = exp(-2|x|)
// above (kernels.rs `tanh_f64`).
ND_FN double nd_tanh_f64(double x) {
    const double p0 = -9.64399179425052238628e-1;
    const double p1 = -9.92877231001918586564e1;
    const double p2 = -1.61468768441708447952e3;
    const double q0 = 1.12811678491632931402e2;
    const double q1 = 2.23548839060100448583e3;
    const double q2 = 4.84406305325125486048e3;
    double a = fmin(fabs(x), 20.0);
    double z = a * a;
    double p = (p0 * z + p1) * z + p2;
    double q = ((z + q0) * z + q1) * z + q2;
    double small = a + a * z * (p / q);
    double e = nd_exp_neg_f64(-2.0 * a);
    double large = (1.0 - e) / (1.0 + e);
    double r = copysign(a < 0.625 ? small : large, x);
    return isnan(x) ? x : r;
}

// tanh, f32 (kernels.rs `tanh_f32`).
ND_FN float nd_tanh_f32(float x) {
    float a = fminf(fabsf(x), 10.0f);
    float z = a * a;
    float small = ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z +
                    1.33314422036e-1f) * z - 3.33332819422e-1f) * z * a + a;
    float e = nd_exp_neg_f32(-2.0f * a);
    float large = (1.0f - e) / (1.0f + e);
    float r = copysignf(a < 0.625f ? small : large, x);
    return isnan(x) ? x : r;
}

// The logistic sigmoid: 1 / (1 + e) or e / (1 + e) with e = exp(-|x|), |x| capped
// (kernels.rs `sigmoid!`).
ND_FN double nd_sigmoid_f64(double x) {
    double a = fmin(fabs(x), 700.0);
    double e = nd_exp_neg_f64(-a);
    double pos = 1.0 / (1.0 + e);
    double r = x < 0.0 ? e * pos : pos;
    return isnan(x) ? x : r;
}

ND_FN float nd_sigmoid_f32(float x) {
    float a = fminf(fabsf(x), 80.0f);
    float e = nd_exp_neg_f32(-a);
    float pos = 1.0f / (1.0f + e);
    float r = x < 0.0f ? e * pos : pos;
    return isnan(x) ? x : r;
}

// max(x, 0) as Rust's `x.max(0.0)` computes it here: +0 for -0 and for NaN (C's fmax
// may return either zero).
ND_FN double nd_relu_f64(double x) { return x > 0.0 ? x : 0.0; }
ND_FN float nd_relu_f32(float x) { return x > 0.0f ? x : 0.0f; }

// The only functions that call the platform's exp / log1p: CUDA's fuse multiply-adds
// inside (as glibc's may on the CPU), so their bits are not promised across backends. They
// are kept out of line (`nd_libm_` names) so that the kernel check allows fused
// multiply-adds inside them and nowhere else.
ND_LIBM_FN double nd_libm_softplus_f64(double x) { return nd_relu_f64(x) + log1p(exp(-fabs(x))); }
ND_LIBM_FN float nd_libm_softplus_f32(float x) { return nd_relu_f32(x) + log1pf(expf(-fabsf(x))); }
ND_LIBM_FN double nd_libm_logistic_f64(double x) { return 1.0 / (1.0 + exp(-x)); }
ND_LIBM_FN float nd_libm_logistic_f32(float x) { return 1.0f / (1.0f + expf(-x)); }

// phi(x) (cpu.rs `activate_here`).
ND_FN double nd_activate_f64(int act, double cap, double x) {
    switch (act) {
    case ND_TANH: return nd_tanh_f64(x);
    case ND_SIGMOID: return nd_sigmoid_f64(x);
    case ND_SOFTPLUS: return nd_libm_softplus_f64(x);
    case ND_RELU: return nd_relu_f64(x);
    case ND_CLIPPED_RELU: return fmin(nd_relu_f64(x), cap);
    case ND_CLIPPED_SOFTPLUS: return fmin(nd_libm_softplus_f64(x), cap);
    default: return x;
    }
}

ND_FN float nd_activate_f32(int act, double cap, float x) {
    switch (act) {
    case ND_TANH: return nd_tanh_f32(x);
    case ND_SIGMOID: return nd_sigmoid_f32(x);
    case ND_SOFTPLUS: return nd_libm_softplus_f32(x);
    case ND_RELU: return nd_relu_f32(x);
    case ND_CLIPPED_RELU: return fminf(nd_relu_f32(x), (float)cap);
    case ND_CLIPPED_SOFTPLUS: return fminf(nd_libm_softplus_f32(x), (float)cap);
    default: return x;
    }
}

// phi'(x) from x and phi = phi(x) (cpu.rs `grad_of`).
ND_FN double nd_activate_grad_f64(int act, double cap, double x, double phi) {
    switch (act) {
    case ND_TANH: return 1.0 - phi * phi;
    case ND_SIGMOID: return phi * (1.0 - phi);
    case ND_SOFTPLUS: return nd_libm_logistic_f64(x);
    case ND_RELU: return x > 0.0 ? 1.0 : 0.0;
    case ND_CLIPPED_RELU: return (x > 0.0 && x < cap) ? 1.0 : 0.0;
    case ND_CLIPPED_SOFTPLUS: return phi < cap ? nd_libm_logistic_f64(x) : 0.0;
    default: return 1.0;
    }
}

ND_FN float nd_activate_grad_f32(int act, double cap, float x, float phi) {
    switch (act) {
    case ND_TANH: return 1.0f - phi * phi;
    case ND_SIGMOID: return phi * (1.0f - phi);
    case ND_SOFTPLUS: return nd_libm_logistic_f32(x);
    case ND_RELU: return x > 0.0f ? 1.0f : 0.0f;
    case ND_CLIPPED_RELU: return (x > 0.0f && x < (float)cap) ? 1.0f : 0.0f;
    case ND_CLIPPED_SOFTPLUS: return phi < (float)cap ? nd_libm_logistic_f32(x) : 0.0f;
    default: return 1.0f;
    }
}

// max(|a|, |b|) (Rust `a.abs().max(b.abs())`) and the correctly rounded square root.
ND_FN double nd_max_abs_f64(double a, double b) { return fmax(fabs(a), fabs(b)); }
ND_FN float nd_max_abs_f32(float a, float b) { return fmaxf(fabsf(a), fabsf(b)); }
ND_FN double nd_sqrt_f64(double x) { return sqrt(x); }
ND_FN float nd_sqrt_f32(float x) { return sqrtf(x); }

#endif

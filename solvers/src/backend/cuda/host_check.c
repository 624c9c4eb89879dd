// The CUDA kernels' element arithmetic (`elementwise.h`) compiled for the host, so that
// `tests/elementwise_header.rs` can compare it bit for bit with the CPU backend.
// Built by `solvers/build.rs` with the `testing` feature only.
#include "elementwise.h"

double nd_host_activate_f64(int act, double cap, double x) { return nd_activate_f64(act, cap, x); }
float nd_host_activate_f32(int act, double cap, float x) { return nd_activate_f32(act, cap, x); }
double nd_host_activate_grad_f64(int act, double cap, double x, double phi) {
    return nd_activate_grad_f64(act, cap, x, phi);
}
float nd_host_activate_grad_f32(int act, double cap, float x, float phi) {
    return nd_activate_grad_f32(act, cap, x, phi);
}
double nd_host_max_abs_f64(double a, double b) { return nd_max_abs_f64(a, b); }
float nd_host_max_abs_f32(float a, float b) { return nd_max_abs_f32(a, b); }

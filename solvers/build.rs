//! With the `testing` feature, compiles the CUDA kernels' element arithmetic
//! (`src/backend/cuda/elementwise.h`) for the host, without contraction into fused
//! multiply-adds, so that the tests compare it bit for bit with the CPU backend.

fn main() {
    println!("cargo::rerun-if-changed=src/backend/cuda/elementwise.h");
    println!("cargo::rerun-if-changed=src/backend/cuda/host_check.c");
    if std::env::var_os("CARGO_FEATURE_TESTING").is_some() {
        cc::Build::new()
            .file("src/backend/cuda/host_check.c")
            .flag("-ffp-contract=off")
            .flag("-fno-fast-math")
            .opt_level(2)
            .compile("neurode_elementwise_host");
    }
}

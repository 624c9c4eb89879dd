//! The CUDA backend ([`Cuda`]): with the `cuda` feature, cudarc (dynamic loading, so it
//! builds without a CUDA toolkit) drives the device, cuBLAS and NVRTC; without it, the same
//! names return [`BackendError::CudaNotCompiled`](super::BackendError::CudaNotCompiled).
//!
//! Kernel sources: `core.cu` (elementwise passes and the Runge–Kutta term lists) with the
//! element arithmetic in `elementwise.h`, shared with the host build that the tests
//! compare bit for bit with the CPU backend (`tests/elementwise_header.rs`).
//! `scripts/check_kernels.sh` compiles every kernel with NVRTC in CI.

#[cfg(feature = "cuda")]
mod device;
#[cfg(feature = "cuda")]
pub use device::{Cuda, CudaBuffer, CudaMatrix, CudaView, CudaViewMut};

#[cfg(not(feature = "cuda"))]
mod stub;
#[cfg(not(feature = "cuda"))]
pub use stub::{Cuda, CudaBuffer, CudaMatrix, CudaView, CudaViewMut};

/// The kernel sources, as NVRTC compiles them: `(file name, text)`.
pub const KERNEL_SOURCES: [(&str, &str); 1] = [("core.cu", include_str!("core.cu"))];

/// The headers the kernel sources include: `(file name, text)`.
pub const KERNEL_HEADERS: [(&str, &str); 1] = [("elementwise.h", include_str!("elementwise.h"))];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::MAX_TERMS;

    /// The kernels' term list holds as many terms as [`Terms`](crate::Terms).
    #[test]
    fn kernels_take_as_many_terms_as_the_host() {
        let define = format!("#define ND_MAX_TERMS {MAX_TERMS}\n");
        assert!(
            KERNEL_SOURCES.iter().any(|(_, src)| src.contains(&define)),
            "{define}"
        );
    }
}

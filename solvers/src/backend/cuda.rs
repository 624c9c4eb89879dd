//! The CUDA backend's names. Until the CUDA kernels land, both builds return a clear error
//! from [`Cuda::new`]: without the `cuda` feature that this build lacks CUDA, with it that
//! the backend is not available yet.

use super::BackendError;

/// The CUDA backend: a device context, a stream, a cuBLAS handle and the NVRTC-compiled
/// kernels (see the [backend docs](super) for the mapping of every operation).
#[derive(Debug)]
pub struct Cuda {
    _private: (),
}

impl Cuda {
    /// Opens device `ordinal`.
    ///
    /// # Errors
    /// [`BackendError::CudaNotCompiled`] in a build without the `cuda` feature;
    /// [`BackendError::CudaUnavailable`] where the backend cannot run.
    pub fn new(ordinal: usize) -> Result<Cuda, BackendError> {
        let _ = ordinal;
        if cfg!(feature = "cuda") {
            Err(BackendError::CudaUnavailable(
                "the CUDA kernels are not part of this version yet".into(),
            ))
        } else {
            Err(BackendError::CudaNotCompiled)
        }
    }
}

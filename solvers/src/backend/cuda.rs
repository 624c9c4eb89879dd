//! The CUDA backend's names. Until the CUDA kernels land, both builds return a clear error
//! from [`Cuda::new`]: without the `cuda` feature that this build lacks CUDA, with it that
//! the backend is not available yet.

use super::BackendError;

/// The CUDA backend: a device context, a stream, a cuBLAS handle and the NVRTC-compiled
/// kernels (see the [`Backend`](super::Backend) docs for the mapping of every operation).
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Asking for the CUDA backend where it cannot run is a clear error, never a panic:
    /// without the feature it says how to get it.
    #[test]
    fn cuda_backend_reports_why_it_cannot_run() {
        let err = Cuda::new(0).unwrap_err();
        let msg = err.to_string();
        if cfg!(feature = "cuda") {
            assert!(matches!(err, BackendError::CudaUnavailable(_)), "{err:?}");
            assert!(msg.contains("unavailable") && msg.contains("Cpu"), "{msg}");
        } else {
            assert_eq!(err, BackendError::CudaNotCompiled);
            assert!(
                msg.contains("built without CUDA: rebuild with `--features cuda`"),
                "{msg}"
            );
        }
    }
}

//! The CUDA backend's names in a build without the `cuda` feature: [`Cuda::new`] says how
//! to get it, and no value of these types can exist, so their [`Backend`] methods are
//! never reached.

use std::convert::Infallible;
use std::marker::PhantomData;
use std::ops::Range;

use crate::backend::{Activation, Backend, BackendError, Terms, Transpose};
use crate::scalar::Real;

/// The CUDA backend (this build has none: see [`Cuda::new`]).
#[derive(Debug)]
pub struct Cuda {
    never: Infallible,
}

/// A buffer in device memory (none in this build).
#[derive(Debug)]
pub struct CudaBuffer<T> {
    never: Infallible,
    _t: PhantomData<T>,
}

/// A read-only range of a [`CudaBuffer`] (none in this build).
#[derive(Debug, Clone, Copy)]
pub struct CudaView<'a, T> {
    never: Infallible,
    _t: PhantomData<&'a [T]>,
}

/// A writable range of a [`CudaBuffer`] (none in this build).
#[derive(Debug)]
pub struct CudaViewMut<'a, T> {
    never: Infallible,
    _t: PhantomData<&'a mut [T]>,
}

/// A matrix in device memory (none in this build).
#[derive(Debug)]
pub struct CudaMatrix<T> {
    never: Infallible,
    _t: PhantomData<T>,
}

impl Cuda {
    /// Opens device `ordinal`.
    ///
    /// # Errors
    /// Always [`BackendError::CudaNotCompiled`]: this build has no CUDA backend.
    pub fn new(ordinal: usize) -> Result<Cuda, BackendError> {
        let _ = ordinal;
        Err(BackendError::CudaNotCompiled)
    }

    /// The device's architecture the kernels were compiled for.
    pub fn arch(&self) -> &str {
        match self.never {}
    }
}

impl<T: Real> Backend<T> for Cuda {
    type Buffer = CudaBuffer<T>;
    type View<'a>
        = CudaView<'a, T>
    where
        T: 'a;
    type ViewMut<'a>
        = CudaViewMut<'a, T>
    where
        T: 'a;
    type Matrix = CudaMatrix<T>;

    fn name(&self) -> &'static str {
        "cuda"
    }
    fn zeros(&self, _: usize) -> Result<CudaBuffer<T>, BackendError> {
        match self.never {}
    }
    fn buffer_len(&self, b: &CudaBuffer<T>) -> usize {
        match b.never {}
    }
    fn view<'a>(&self, b: &'a CudaBuffer<T>, _: Range<usize>) -> CudaView<'a, T> {
        match b.never {}
    }
    fn view_mut<'a>(&self, b: &'a mut CudaBuffer<T>, _: Range<usize>) -> CudaViewMut<'a, T> {
        match b.never {}
    }
    fn upload(&self, _: &[T], dst: CudaViewMut<'_, T>) {
        match dst.never {}
    }
    fn download(&self, src: CudaView<'_, T>, _: &mut [T]) -> Result<(), BackendError> {
        match src.never {}
    }
    fn synchronize(&self) -> Result<(), BackendError> {
        match self.never {}
    }
    fn matrix(&self, _: usize, _: usize, _: &[T]) -> Result<CudaMatrix<T>, BackendError> {
        match self.never {}
    }
    fn gemm(
        &self,
        _: Transpose,
        _: Transpose,
        _: usize,
        _: usize,
        _: usize,
        _: T,
        _: CudaView<'_, T>,
        _: usize,
        _: CudaView<'_, T>,
        _: usize,
        _: T,
        _: CudaViewMut<'_, T>,
        _: usize,
    ) {
        match self.never {}
    }
    fn gemm_panels(
        &self,
        _: &CudaMatrix<T>,
        _: usize,
        _: T,
        _: CudaView<'_, T>,
        _: usize,
        _: T,
        _: CudaViewMut<'_, T>,
        _: usize,
    ) {
        match self.never {}
    }
    fn gemv_panels(&self, a: &CudaMatrix<T>, _: CudaView<'_, T>, _: CudaViewMut<'_, T>) {
        match a.never {}
    }
    fn axpy(&self, _: T, _: CudaView<'_, T>, _: CudaViewMut<'_, T>) {
        match self.never {}
    }
    fn combine(&self, _: CudaView<'_, T>, _: &[(T, CudaView<'_, T>)], _: CudaViewMut<'_, T>) {
        match self.never {}
    }
    fn combine_columns(
        &self,
        _: &Terms<T>,
        _: usize,
        _: usize,
        _: CudaView<'_, T>,
        _: CudaView<'_, T>,
        _: CudaView<'_, T>,
        _: usize,
        _: CudaViewMut<'_, T>,
    ) {
        match self.never {}
    }
    fn error_norms(
        &self,
        _: &Terms<T>,
        _: usize,
        _: usize,
        _: CudaView<'_, T>,
        _: T,
        _: T,
        _: CudaView<'_, T>,
        _: CudaView<'_, T>,
        _: CudaView<'_, T>,
        _: usize,
        _: CudaViewMut<'_, T>,
    ) {
        match self.never {}
    }
    fn non_finite(
        &self,
        _: usize,
        _: usize,
        _: CudaView<'_, T>,
        _: CudaView<'_, T>,
        _: CudaViewMut<'_, T>,
    ) {
        match self.never {}
    }
    fn activate(&self, _: Activation, _: CudaViewMut<'_, T>) {
        match self.never {}
    }
    fn activate_to(&self, _: Activation, _: CudaView<'_, T>, _: CudaViewMut<'_, T>) {
        match self.never {}
    }
    fn activate_grad(
        &self,
        _: Activation,
        _: CudaView<'_, T>,
        _: CudaView<'_, T>,
        _: CudaViewMut<'_, T>,
    ) {
        match self.never {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asking for the CUDA backend in a build without it is a clear error, never a panic,
    /// and says how to get it.
    #[test]
    fn cuda_backend_reports_why_it_cannot_run() {
        let err = Cuda::new(0).unwrap_err();
        assert_eq!(err, BackendError::CudaNotCompiled);
        assert!(
            err.to_string()
                .contains("built without CUDA: rebuild with `--features cuda`"),
            "{err}"
        );
    }
}

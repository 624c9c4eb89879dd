//! The CUDA backend on cudarc: one context and stream per [`Cuda`], cuBLAS on that
//! stream in its default (true FP32, no TF32) math mode, and the kernels of `core.cu`
//! compiled by NVRTC with `--fmad=false` for the device's own architecture, once per
//! process and architecture.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::ops::Range;
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::cublas::{sys as blas, CudaBlas};
use cudarc::driver::sys::CUdeviceptr;
use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, DevicePtr, DeviceRepr, LaunchConfig,
    PushKernelArg,
};
use cudarc::nvrtc::{compile_ptx_with_opts, CompileOptions, Ptx};

use super::{KERNEL_HEADERS, KERNEL_SOURCES};
use crate::backend::{Activation, Backend, BackendError, Terms, Transpose};

// SAFETY: `Terms` is `#[repr(C)]` plain data (`nd_terms` in core.cu), valid to copy to
// the device as a kernel argument.
unsafe impl DeviceRepr for Terms<f32> {}
// SAFETY: as above.
unsafe impl DeviceRepr for Terms<f64> {}

/// The kernels of `core.cu`, each with an `_f32` and an `_f64` version.
const KERNELS: [&str; 6] = [
    "nd_activate",
    "nd_activate_grad",
    "nd_axpy",
    "nd_combine_columns",
    "nd_error_norms",
    "nd_non_finite",
];

/// Threads per block of the elementwise kernels.
const BLOCK: u32 = 256;

/// The CUDA backend (see the [`Backend`] docs): a device context, a stream, a cuBLAS
/// handle and the NVRTC-compiled kernels.
pub struct Cuda {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    blas: CudaBlas,
    functions: HashMap<String, CudaFunction>,
    arch: String,
    /// The first error of a queued operation since the last check.
    error: Mutex<Option<BackendError>>,
}

impl std::fmt::Debug for Cuda {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cuda")
            .field("ordinal", &self.ctx.ordinal())
            .field("arch", &self.arch)
            .finish()
    }
}

fn unavailable(what: impl std::fmt::Display) -> BackendError {
    BackendError::CudaUnavailable(what.to_string())
}

/// The PTX of the kernel sources for `arch` (`compute_XY`), compiled once per process.
fn ptx_for(arch: &str) -> Result<Ptx, BackendError> {
    static CACHE: OnceLock<Mutex<HashMap<String, Ptx>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = cache.get(arch) {
        return Ok(p.clone());
    }
    // NVRTC through cudarc takes include paths, not in-memory headers: the headers are
    // pasted in place of their `#include` lines.
    let mut src = String::new();
    for (_, text) in KERNEL_SOURCES {
        let mut text = text.to_string();
        for (name, header) in KERNEL_HEADERS {
            text = text.replace(&format!("#include \"{name}\""), header);
        }
        src.push_str(&text);
        src.push('\n');
    }
    let opts = CompileOptions {
        fmad: Some(false),
        ftz: Some(false),
        prec_div: Some(true),
        prec_sqrt: Some(true),
        options: vec![format!("--gpu-architecture={arch}"), "-std=c++17".into()],
        ..Default::default()
    };
    let ptx = compile_ptx_with_opts(src, opts).map_err(|e| {
        unavailable(format!(
            "NVRTC could not compile the kernels for {arch}: {e:?}"
        ))
    })?;
    cache.insert(arch.to_string(), ptx.clone());
    Ok(ptx)
}

impl Cuda {
    /// Opens device `ordinal`: probes the driver, NVRTC and cuBLAS libraries, creates a
    /// context, a stream and a cuBLAS handle, and compiles (or takes from this process's
    /// cache) the kernels for the device's architecture.
    ///
    /// # Errors
    /// [`BackendError::CudaUnavailable`] naming what is missing: no driver (no CUDA device
    /// on this machine), no NVRTC or cuBLAS library, no device `ordinal`, or a failure to
    /// create the context or compile the kernels.
    pub fn new(ordinal: usize) -> Result<Cuda, BackendError> {
        // SAFETY: these only try to open the shared libraries.
        let (driver, nvrtc, cublas) = unsafe {
            (
                cudarc::driver::sys::is_culib_present(),
                cudarc::nvrtc::sys::is_culib_present(),
                cudarc::cublas::sys::is_culib_present(),
            )
        };
        if !driver {
            return Err(unavailable(
                "no CUDA driver library (libcuda) here, so no CUDA device",
            ));
        }
        if !nvrtc || !cublas {
            return Err(unavailable(format!(
                "the CUDA 13 {} library is not on the library path (LD_LIBRARY_PATH)",
                if nvrtc {
                    "cuBLAS (libcublas)"
                } else {
                    "NVRTC (libnvrtc)"
                }
            )));
        }
        let count = CudaContext::device_count()
            .map_err(|e| unavailable(format!("the driver could not count devices: {e}")))?;
        if ordinal >= count.max(0) as usize {
            return Err(unavailable(format!(
                "device {ordinal} asked for, but {count} CUDA device(s) present"
            )));
        }
        let ctx = CudaContext::new(ordinal)
            .map_err(|e| unavailable(format!("could not open device {ordinal}: {e}")))?;
        // One stream: its order is the only synchronisation the buffers need.
        // SAFETY: every buffer of this backend is used on `stream` alone.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx
            .new_stream()
            .map_err(|e| unavailable(format!("could not create a stream: {e}")))?;
        let blas = CudaBlas::new(stream.clone())
            .map_err(|e| unavailable(format!("could not create a cuBLAS handle: {e}")))?;
        // SAFETY: a valid handle; the default math mode computes FP32 in FP32 (no TF32).
        unsafe { blas::cublasSetMathMode(*blas.handle(), blas::cublasMath_t::CUBLAS_DEFAULT_MATH) }
            .result()
            .map_err(|e| unavailable(format!("could not set cuBLAS's math mode: {e}")))?;
        let (major, minor) = ctx
            .compute_capability()
            .map_err(|e| unavailable(format!("could not read the compute capability: {e}")))?;
        let arch = format!("compute_{major}{minor}");
        let module = ctx
            .load_module(ptx_for(&arch)?)
            .map_err(|e| unavailable(format!("could not load the kernels for {arch}: {e}")))?;
        let mut functions = HashMap::new();
        for name in KERNELS {
            for suffix in ["f32", "f64"] {
                let full = format!("{name}_{suffix}");
                let f = module
                    .load_function(&full)
                    .map_err(|e| unavailable(format!("kernel {full} missing: {e}")))?;
                functions.insert(full, f);
            }
        }
        Ok(Cuda {
            ctx,
            stream,
            blas,
            functions,
            arch,
            error: Mutex::new(None),
        })
    }

    /// The device's architecture the kernels were compiled for (`compute_XY`).
    pub fn arch(&self) -> &str {
        &self.arch
    }

    /// Keeps the first error of a queued operation for the next check.
    fn record<E: std::fmt::Display>(&self, during: &str, r: Result<(), E>) {
        if let Err(e) = r {
            let mut slot = self.error.lock().unwrap_or_else(|e| e.into_inner());
            slot.get_or_insert(BackendError::Device {
                backend: "cuda",
                during: during.to_string(),
                reason: e.to_string(),
            });
        }
    }

    /// Makes this backend's context current on the calling thread (cudarc's own launches
    /// and allocations do so themselves; the raw copies and cuBLAS calls need it).
    fn bind(&self) {
        let r = self.ctx.bind_to_thread();
        self.record("making the context current", r);
    }

    /// Waits for the stream and returns the first error since the last check.
    fn check(&self) -> Result<(), BackendError> {
        self.bind();
        let r = self.stream.synchronize();
        self.record("synchronizing the stream", r);
        let mut slot = self.error.lock().unwrap_or_else(|e| e.into_inner());
        slot.take().map_or(Ok(()), Err)
    }

    fn function(&self, name: &str) -> &CudaFunction {
        &self.functions[name]
    }

    /// A grid-stride launch over `n` elements.
    fn elementwise(n: usize) -> LaunchConfig {
        let blocks = n.div_ceil(BLOCK as usize).clamp(1, 1 << 16) as u32;
        LaunchConfig {
            grid_dim: (blocks, 1, 1),
            block_dim: (BLOCK, 1, 1),
            shared_mem_bytes: 0,
        }
    }
}

/// A buffer in device memory.
#[derive(Debug)]
pub struct CudaBuffer<T> {
    /// Owns the memory (freed in stream order when dropped); reached through `ptr`.
    _slice: CudaSlice<T>,
    ptr: CUdeviceptr,
    len: usize,
}

impl<T> CudaBuffer<T> {
    /// The device address of the start of `r`.
    ///
    /// # Panics
    /// If `r` is not inside the buffer.
    fn address_of(&self, r: &Range<usize>) -> CUdeviceptr {
        assert!(
            r.start <= r.end && r.end <= self.len,
            "view {r:?} of {} elements",
            self.len
        );
        self.ptr + (r.start * std::mem::size_of::<T>()) as u64
    }
}

/// A read-only range of a [`CudaBuffer`].
#[derive(Debug, Clone, Copy)]
pub struct CudaView<'a, T> {
    ptr: CUdeviceptr,
    len: usize,
    _borrow: PhantomData<&'a [T]>,
}

/// A writable range of a [`CudaBuffer`].
#[derive(Debug)]
pub struct CudaViewMut<'a, T> {
    ptr: CUdeviceptr,
    len: usize,
    _borrow: PhantomData<&'a mut [T]>,
}

/// A column-major matrix in device memory, kept for products.
#[derive(Debug)]
pub struct CudaMatrix<T> {
    buf: CudaBuffer<T>,
    rows: usize,
    cols: usize,
}

/// Panics, as a slice would on the CPU, when a view is shorter than an operation reads or
/// writes (the device would not say).
fn need(have: usize, want: usize, what: &str) {
    assert!(
        have >= want,
        "{what}: the view holds {have} values, the operation needs {want}"
    );
}

/// The length a column-major operand of `rows x cols` with leading dimension `ld` spans.
fn span(rows: usize, cols: usize, ld: usize) -> usize {
    if rows == 0 || cols == 0 {
        0
    } else {
        ld * (cols - 1) + rows
    }
}

fn op(t: Transpose) -> blas::cublasOperation_t {
    match t {
        Transpose::No => blas::cublasOperation_t::CUBLAS_OP_N,
        Transpose::Yes => blas::cublasOperation_t::CUBLAS_OP_T,
    }
}

fn int(v: usize) -> i32 {
    i32::try_from(v).expect("a cuBLAS dimension fits i32")
}

macro_rules! cuda_backend {
    ($t:ty, $suffix:literal, $gemm:ident, $gemv:ident) => {
        impl Backend<$t> for Cuda {
            type Buffer = CudaBuffer<$t>;
            type View<'a> = CudaView<'a, $t>;
            type ViewMut<'a> = CudaViewMut<'a, $t>;
            type Matrix = CudaMatrix<$t>;

            fn name(&self) -> &'static str {
                "cuda"
            }

            fn zeros(&self, len: usize) -> Result<CudaBuffer<$t>, BackendError> {
                let slice = self.stream.alloc_zeros::<$t>(len.max(1)).map_err(|e| {
                    BackendError::OutOfMemory {
                        backend: "cuda",
                        bytes: len.saturating_mul(std::mem::size_of::<$t>()),
                        reason: e.to_string(),
                    }
                })?;
                let ptr = slice.device_ptr(&self.stream).0;
                Ok(CudaBuffer {
                    _slice: slice,
                    ptr,
                    len,
                })
            }

            fn buffer_len(&self, b: &CudaBuffer<$t>) -> usize {
                b.len
            }

            fn view<'a>(&self, b: &'a CudaBuffer<$t>, r: Range<usize>) -> CudaView<'a, $t> {
                CudaView {
                    ptr: b.address_of(&r),
                    len: r.len(),
                    _borrow: PhantomData,
                }
            }

            fn view_mut<'a>(
                &self,
                b: &'a mut CudaBuffer<$t>,
                r: Range<usize>,
            ) -> CudaViewMut<'a, $t> {
                CudaViewMut {
                    ptr: b.address_of(&r),
                    len: r.len(),
                    _borrow: PhantomData,
                }
            }

            fn upload(&self, src: &[$t], dst: CudaViewMut<'_, $t>) {
                assert_eq!(src.len(), dst.len, "upload: lengths differ");
                self.bind();
                // SAFETY: `dst` is a live range of a buffer of this stream, as long as
                // `src`; pageable host memory is staged before the call returns.
                let r = unsafe {
                    cudarc::driver::result::memcpy_htod_async(dst.ptr, src, self.stream.cu_stream())
                };
                self.record("copying to the device", r);
            }

            fn download(&self, src: CudaView<'_, $t>, dst: &mut [$t]) -> Result<(), BackendError> {
                assert_eq!(src.len, dst.len(), "download: lengths differ");
                self.bind();
                // SAFETY: `src` is a live range of a buffer of this stream; the stream is
                // synchronised below, before `dst` is read.
                let r = unsafe {
                    cudarc::driver::result::memcpy_dtoh_async(dst, src.ptr, self.stream.cu_stream())
                };
                self.record("copying to the host", r);
                self.check()
            }

            fn synchronize(&self) -> Result<(), BackendError> {
                self.check()
            }

            fn matrix(
                &self,
                rows: usize,
                cols: usize,
                a: &[$t],
            ) -> Result<CudaMatrix<$t>, BackendError> {
                assert_eq!(a.len(), rows * cols, "a {rows} x {cols} matrix");
                let mut buf = <Self as Backend<$t>>::zeros(self, a.len())?;
                let len = buf.len;
                <Self as Backend<$t>>::upload(
                    self,
                    a,
                    <Self as Backend<$t>>::view_mut(self, &mut buf, 0..len),
                );
                Ok(CudaMatrix { buf, rows, cols })
            }

            #[allow(clippy::too_many_arguments)]
            fn gemm(
                &self,
                ta: Transpose,
                tb: Transpose,
                m: usize,
                n: usize,
                k: usize,
                alpha: $t,
                a: CudaView<'_, $t>,
                lda: usize,
                b: CudaView<'_, $t>,
                ldb: usize,
                beta: $t,
                c: CudaViewMut<'_, $t>,
                ldc: usize,
            ) {
                if m == 0 || n == 0 {
                    return;
                }
                let (ar, ac) = if ta == Transpose::No { (m, k) } else { (k, m) };
                let (br, bc) = if tb == Transpose::No { (k, n) } else { (n, k) };
                need(a.len, span(ar, ac, lda), "gemm: a");
                need(b.len, span(br, bc, ldb), "gemm: b");
                need(c.len, span(m, n, ldc), "gemm: c");
                self.bind();
                // SAFETY: the views are live ranges of this stream's buffers, at least as
                // long as the shapes and leading dimensions reach (checked above).
                let r = unsafe {
                    blas::$gemm(
                        *self.blas.handle(),
                        op(ta),
                        op(tb),
                        int(m),
                        int(n),
                        int(k),
                        &alpha,
                        a.ptr as *const $t,
                        int(lda.max(1)),
                        b.ptr as *const $t,
                        int(ldb.max(1)),
                        &beta,
                        c.ptr as *mut $t,
                        int(ldc.max(1)),
                    )
                }
                .result();
                self.record("a cuBLAS gemm", r);
            }

            #[allow(clippy::too_many_arguments)]
            fn gemm_panels(
                &self,
                a: &CudaMatrix<$t>,
                n: usize,
                alpha: $t,
                b: CudaView<'_, $t>,
                ldb: usize,
                beta: $t,
                c: CudaViewMut<'_, $t>,
                ldc: usize,
            ) {
                let av = <Self as Backend<$t>>::view(self, &a.buf, 0..a.buf.len);
                let no = Transpose::No;
                <Self as Backend<$t>>::gemm(
                    self, no, no, a.rows, n, a.cols, alpha, av, a.rows, b, ldb, beta, c, ldc,
                );
            }

            fn gemv_panels(&self, a: &CudaMatrix<$t>, x: CudaView<'_, $t>, y: CudaViewMut<'_, $t>) {
                need(x.len, a.cols, "gemv_panels: x");
                need(y.len, a.rows, "gemv_panels: y");
                if a.rows == 0 {
                    return;
                }
                self.bind();
                if a.cols == 0 {
                    // y = A x with no columns is zero (as on the CPU); cuBLAS would leave y.
                    // SAFETY: `y` is a live range of this stream's buffers, `a.rows` long.
                    let r = unsafe {
                        cudarc::driver::result::memset_d8_async(
                            y.ptr,
                            0,
                            a.rows * std::mem::size_of::<$t>(),
                            self.stream.cu_stream(),
                        )
                    };
                    self.record("zeroing on the device", r);
                    return;
                }
                let (one, zero): ($t, $t) = (1.0, 0.0);
                // SAFETY: as in `gemm`.
                let r = unsafe {
                    blas::$gemv(
                        *self.blas.handle(),
                        blas::cublasOperation_t::CUBLAS_OP_N,
                        int(a.rows),
                        int(a.cols),
                        &one,
                        a.buf.ptr as *const $t,
                        int(a.rows),
                        x.ptr as *const $t,
                        1,
                        &zero,
                        y.ptr as *mut $t,
                        1,
                    )
                }
                .result();
                self.record("a cuBLAS gemv", r);
            }

            fn axpy(&self, alpha: $t, x: CudaView<'_, $t>, y: CudaViewMut<'_, $t>) {
                let n = x.len.min(y.len) as u64;
                if n == 0 {
                    return;
                }
                let f = self.function(concat!("nd_axpy_", $suffix));
                let mut l = self.stream.launch_builder(f);
                l.arg(&n).arg(&alpha).arg(&x.ptr).arg(&y.ptr);
                // SAFETY: the kernel reads and writes `n` elements of the views.
                let r = unsafe { l.launch(Self::elementwise(n as usize)) }.map(|_| ());
                self.record("axpy", r);
            }

            fn combine(
                &self,
                x: CudaView<'_, $t>,
                terms: &[($t, CudaView<'_, $t>)],
                out: CudaViewMut<'_, $t>,
            ) {
                // One column of `out.len` values: copy `x`, then one axpy per term (the
                // same bits as the fused pass of the CPU).
                let len = out.len;
                need(x.len, len, "combine: x");
                for (_, k) in terms {
                    need(k.len, len, "combine: a term");
                }
                self.bind();
                // SAFETY: both views are live ranges of this stream's buffers, `len` long.
                let copy = unsafe {
                    cudarc::driver::result::memcpy_dtod_async(
                        out.ptr,
                        x.ptr,
                        len * std::mem::size_of::<$t>(),
                        self.stream.cu_stream(),
                    )
                };
                self.record("copying on the device", copy);
                for &(c, k) in terms {
                    let o = CudaViewMut::<$t> {
                        ptr: out.ptr,
                        len,
                        _borrow: PhantomData,
                    };
                    <Self as Backend<$t>>::axpy(self, c, k, o);
                }
            }

            #[allow(clippy::too_many_arguments)]
            fn combine_columns(
                &self,
                terms: &Terms<$t>,
                dim: usize,
                cols: usize,
                h: CudaView<'_, $t>,
                x: CudaView<'_, $t>,
                k: CudaView<'_, $t>,
                stride: usize,
                out: CudaViewMut<'_, $t>,
            ) {
                let n = dim * cols;
                if n == 0 {
                    return;
                }
                let last = terms
                    .iter()
                    .map(|(st, _)| st * stride + n)
                    .max()
                    .unwrap_or(0);
                need(h.len, cols, "combine_columns: h");
                need(x.len, n, "combine_columns: x");
                need(k.len, last, "combine_columns: k");
                need(out.len, n, "combine_columns: out");
                let (dim, cols, stride) = (dim as u64, cols as u64, stride as u64);
                let f = self.function(concat!("nd_combine_columns_", $suffix));
                let mut l = self.stream.launch_builder(f);
                l.arg(terms)
                    .arg(&dim)
                    .arg(&cols)
                    .arg(&h.ptr)
                    .arg(&x.ptr)
                    .arg(&k.ptr);
                l.arg(&stride).arg(&out.ptr);
                // SAFETY: the kernel reads and writes inside the views (the caller's shapes).
                let r = unsafe { l.launch(Self::elementwise(n)) }.map(|_| ());
                self.record("a Runge–Kutta combination", r);
            }

            #[allow(clippy::too_many_arguments)]
            fn error_norms(
                &self,
                terms: &Terms<$t>,
                dim: usize,
                cols: usize,
                h: CudaView<'_, $t>,
                rtol: $t,
                atol: $t,
                x: CudaView<'_, $t>,
                x_new: CudaView<'_, $t>,
                k: CudaView<'_, $t>,
                stride: usize,
                out: CudaViewMut<'_, $t>,
            ) {
                if cols == 0 {
                    return;
                }
                let n = dim * cols;
                let last = terms
                    .iter()
                    .map(|(st, _)| st * stride + n)
                    .max()
                    .unwrap_or(0);
                need(h.len, cols, "error_norms: h");
                need(x.len.min(x_new.len), n, "error_norms: x");
                need(k.len, last, "error_norms: k");
                need(out.len, cols, "error_norms: out");
                let (dim64, cols64, stride) = (dim as u64, cols as u64, stride as u64);
                let f = self.function(concat!("nd_error_norms_", $suffix));
                let mut l = self.stream.launch_builder(f);
                l.arg(terms)
                    .arg(&dim64)
                    .arg(&cols64)
                    .arg(&h.ptr)
                    .arg(&rtol)
                    .arg(&atol);
                l.arg(&x.ptr)
                    .arg(&x_new.ptr)
                    .arg(&k.ptr)
                    .arg(&stride)
                    .arg(&out.ptr);
                // SAFETY: as above.
                let r = unsafe { l.launch(Self::elementwise(cols)) }.map(|_| ());
                self.record("the error norms", r);
            }

            fn non_finite(
                &self,
                dim: usize,
                cols: usize,
                h: CudaView<'_, $t>,
                x: CudaView<'_, $t>,
                out: CudaViewMut<'_, $t>,
            ) {
                if cols == 0 {
                    return;
                }
                need(h.len, cols, "non_finite: h");
                need(x.len, dim * cols, "non_finite: x");
                need(out.len, cols, "non_finite: out");
                let (dim64, cols64) = (dim as u64, cols as u64);
                let f = self.function(concat!("nd_non_finite_", $suffix));
                let mut l = self.stream.launch_builder(f);
                l.arg(&dim64)
                    .arg(&cols64)
                    .arg(&h.ptr)
                    .arg(&x.ptr)
                    .arg(&out.ptr);
                // SAFETY: the kernel reads `dim * cols` values of `x` and writes `cols` of `out`.
                let r = unsafe { l.launch(Self::elementwise(cols)) }.map(|_| ());
                self.record("the non-finite scan", r);
            }

            fn activate(&self, act: Activation, x: CudaViewMut<'_, $t>) {
                let v = CudaView::<$t> {
                    ptr: x.ptr,
                    len: x.len,
                    _borrow: PhantomData,
                };
                <Self as Backend<$t>>::activate_to(self, act, v, x);
            }

            fn activate_to(&self, act: Activation, x: CudaView<'_, $t>, out: CudaViewMut<'_, $t>) {
                let n = out.len as u64;
                need(x.len, out.len, "activate_to: x");
                if n == 0 {
                    return;
                }
                let (code, cap) = act.kernel_code();
                let f = self.function(concat!("nd_activate_", $suffix));
                let mut l = self.stream.launch_builder(f);
                l.arg(&code).arg(&cap).arg(&n).arg(&x.ptr).arg(&out.ptr);
                // SAFETY: the kernel reads `n` elements of `x` and writes `n` of `out`.
                let r = unsafe { l.launch(Self::elementwise(n as usize)) }.map(|_| ());
                self.record("an activation", r);
            }

            fn activate_grad(
                &self,
                act: Activation,
                x: CudaView<'_, $t>,
                phi: CudaView<'_, $t>,
                out: CudaViewMut<'_, $t>,
            ) {
                let n = out.len.min(x.len).min(phi.len) as u64;
                if n == 0 {
                    return;
                }
                let (code, cap) = act.kernel_code();
                let f = self.function(concat!("nd_activate_grad_", $suffix));
                let mut l = self.stream.launch_builder(f);
                l.arg(&code)
                    .arg(&cap)
                    .arg(&n)
                    .arg(&x.ptr)
                    .arg(&phi.ptr)
                    .arg(&out.ptr);
                // SAFETY: as above.
                let r = unsafe { l.launch(Self::elementwise(n as usize)) }.map(|_| ());
                self.record("an activation's derivative", r);
            }
        }
    };
}

cuda_backend!(f32, "f32", cublasSgemm_v2, cublasSgemv_v2);
cuda_backend!(f64, "f64", cublasDgemm_v2, cublasDgemv_v2);

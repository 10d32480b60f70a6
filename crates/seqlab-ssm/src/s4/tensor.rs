//! The S4D / S4 kernels and the FFT convolution as candle custom ops with backward, so layers
//! built from `candle_core::Var`s train through them (the pattern of [`crate::candle_op`]):
//! the kernel parameters are flattened and concatenated into one vector (`Tensor::cat`, whose
//! backward splits the gradient again), a [`CustomOp1`] runs the f64 kernel and its `bwd` the
//! hand-written backward. The kernel ops run on the CPU (computed in f64); f32 or f64 tensors.
//!
//! On another device the same functions still work and stay differentiable: the kernel op's
//! small packed parameters (H·N values) go to the host and K comes back ([`Tensor::to_device`]
//! has a backward). The convolution runs on CUDA as `kernels/long_conv.cu` (feature `cuda`;
//! [`crate::cuda::long_conv_fwd_dev`] and its two gradients on the device), and on any other
//! device as a Toeplitz matrix product of tensor ops ([`toeplitz_conv_tensor`]).

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Device, Layout, Shape, Tensor};

use super::fft_conv::{fft_conv, fft_conv_bwd, ConvFloat, FftConvPlan};
use super::s4_kernel::{s4_kernel, s4_kernel_bwd, DplrParams};
use super::s4d_kernel::{s4d_kernel, s4d_kernel_bwd, Disc, S4dParams};
use crate::error::{Result, SsmError};

#[derive(Clone, Copy, Debug)]
enum Which {
    S4d(Disc),
    S4,
}

/// Packed kernel op: input = cat(flattened parameters), output = K (H·L).
#[derive(Debug)]
struct KernelOp {
    which: Which,
    h: usize,
    n: usize,
    l: usize,
    rate: f64,
}

fn to_f64(s: &CpuStorage, layout: &Layout) -> candle_core::Result<Vec<f64>> {
    let (a, b) = layout
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::msg("s4 op: input not contiguous"))?;
    match s {
        CpuStorage::F32(v) => Ok(v[a..b].iter().map(|&x| x as f64).collect()),
        CpuStorage::F64(v) => Ok(v[a..b].to_vec()),
        o => Err(candle_core::Error::msg(format!(
            "s4 op: dtype {:?} not supported",
            o.dtype()
        ))),
    }
}

fn from_f64(v: Vec<f64>, dtype: DType) -> CpuStorage {
    match dtype {
        DType::F32 => CpuStorage::F32(v.into_iter().map(|x| x as f32).collect()),
        _ => CpuStorage::F64(v),
    }
}

impl KernelOp {
    fn out_len(&self) -> usize {
        match self.which {
            Which::S4d(_) => self.l,
            Which::S4 => (self.l as f64 / self.rate).round() as usize,
        }
    }

    fn fwd(&self, x: &[f64]) -> Result<Vec<f64>> {
        let (h, n) = (self.h, self.n);
        let hn = h * n;
        let s = |i: usize| &x[i * hn..(i + 1) * hn];
        match self.which {
            Which::S4d(disc) => {
                let p = S4dParams {
                    h,
                    n,
                    a_re: s(0),
                    a_im: s(1),
                    b_re: s(2),
                    b_im: s(3),
                    c_re: s(4),
                    c_im: s(5),
                    dt: &x[6 * hn..6 * hn + h],
                };
                s4d_kernel(&p, disc, self.l, self.rate)
            }
            Which::S4 => {
                let p = DplrParams {
                    h,
                    n,
                    lambda_re: s(0),
                    lambda_im: s(1),
                    p_re: s(2),
                    p_im: s(3),
                    b_re: s(4),
                    b_im: s(5),
                    c_re: s(6),
                    c_im: s(7),
                    dt: &x[8 * hn..8 * hn + h],
                };
                s4_kernel(&p, self.l, self.rate)
            }
        }
    }

    fn bwd(&self, x: &[f64], g: &[f64]) -> Result<Vec<f64>> {
        let (h, n) = (self.h, self.n);
        let hn = h * n;
        let s = |i: usize| &x[i * hn..(i + 1) * hn];
        let parts: Vec<Vec<f64>> = match self.which {
            Which::S4d(disc) => {
                let p = S4dParams {
                    h,
                    n,
                    a_re: s(0),
                    a_im: s(1),
                    b_re: s(2),
                    b_im: s(3),
                    c_re: s(4),
                    c_im: s(5),
                    dt: &x[6 * hn..6 * hn + h],
                };
                let gr = s4d_kernel_bwd(&p, disc, self.l, self.rate, g)?;
                vec![gr.a_re, gr.a_im, gr.b_re, gr.b_im, gr.c_re, gr.c_im, gr.dt]
            }
            Which::S4 => {
                let p = DplrParams {
                    h,
                    n,
                    lambda_re: s(0),
                    lambda_im: s(1),
                    p_re: s(2),
                    p_im: s(3),
                    b_re: s(4),
                    b_im: s(5),
                    c_re: s(6),
                    c_im: s(7),
                    dt: &x[8 * hn..8 * hn + h],
                };
                let gr = s4_kernel_bwd(&p, self.l, self.rate, g)?;
                vec![
                    gr.lambda_re,
                    gr.lambda_im,
                    gr.p_re,
                    gr.p_im,
                    gr.b_re,
                    gr.b_im,
                    gr.c_re,
                    gr.c_im,
                    gr.dt,
                ]
            }
        };
        Ok(parts.concat())
    }
}

impl CustomOp1 for KernelOp {
    fn name(&self) -> &'static str {
        "seqlab-s4-kernel"
    }

    fn cpu_fwd(&self, s: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = to_f64(s, layout)?;
        let k = self.fwd(&x).map_err(candle_core::Error::wrap)?;
        Ok((
            from_f64(k, s.dtype()),
            Shape::from((self.h, self.out_len())),
        ))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let x = arg.to_dtype(DType::F64)?.to_vec1::<f64>()?;
        let g = grad.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
        let gx = self.bwd(&x, &g).map_err(candle_core::Error::wrap)?;
        Ok(Some(
            Tensor::from_vec(gx, arg.shape(), arg.device())?.to_dtype(arg.dtype())?,
        ))
    }
}

/// Applies the kernel op where it runs (the host), differentiably: a packed parameter vector
/// on another device goes to the CPU and K comes back to that device.
fn on_host(packed: Tensor, op: KernelOp) -> Result<Tensor> {
    if packed.device().is_cpu() {
        return Ok(packed.apply_op1(op)?);
    }
    let device = packed.device().clone();
    Ok(packed
        .to_device(&Device::Cpu)?
        .apply_op1(op)?
        .to_device(&device)?)
}

fn pack(ts: &[&Tensor], shapes: &[Vec<usize>]) -> Result<Tensor> {
    let dtype = ts[0].dtype();
    if dtype != DType::F32 && dtype != DType::F64 {
        return Err(SsmError::Invalid(format!(
            "s4 kernel: dtype {dtype:?} (f32 or f64)"
        )));
    }
    for (i, (t, s)) in ts.iter().zip(shapes).enumerate() {
        if t.dtype() != dtype || t.dims() != s.as_slice() {
            return Err(SsmError::Invalid(format!(
                "s4 kernel: argument {i} has {:?} {:?}, expected {dtype:?} {s:?}",
                t.dtype(),
                t.dims()
            )));
        }
    }
    let flat = ts
        .iter()
        .map(|t| t.flatten_all())
        .collect::<candle_core::Result<Vec<_>>>()?;
    Ok(Tensor::cat(&flat, 0)?)
}

/// S4D kernel (S4D paper eqs. (5)–(6)) on tensors, differentiable w.r.t. every input:
/// A, B, C as re / im tensors (H, N/2), Δ (H); returns K (H, L). See
/// [`super::s4d_kernel::s4d_kernel`].
#[allow(clippy::too_many_arguments)]
pub fn s4d_kernel_tensor(
    a_re: &Tensor,
    a_im: &Tensor,
    b_re: &Tensor,
    b_im: &Tensor,
    c_re: &Tensor,
    c_im: &Tensor,
    dt: &Tensor,
    disc: Disc,
    l: usize,
    rate: f64,
) -> Result<Tensor> {
    let (h, n) = a_re.dims2()?;
    let hn = vec![h, n];
    let packed = pack(
        &[a_re, a_im, b_re, b_im, c_re, c_im, dt],
        &[
            hn.clone(),
            hn.clone(),
            hn.clone(),
            hn.clone(),
            hn.clone(),
            hn,
            vec![h],
        ],
    )?;
    on_host(
        packed,
        KernelOp {
            which: Which::S4d(disc),
            h,
            n,
            l,
            rate,
        },
    )
}

/// S4 DPLR kernel (S4 Algorithm 1) on tensors, differentiable: Λ, P, B, C̃ as re / im tensors
/// (H, N/2), Δ (H); C̃ set up for length `l`; returns K (H, round(l/rate)). See
/// [`super::s4_kernel::s4_kernel`].
#[allow(clippy::too_many_arguments)]
pub fn s4_kernel_tensor(
    lambda_re: &Tensor,
    lambda_im: &Tensor,
    p_re: &Tensor,
    p_im: &Tensor,
    b_re: &Tensor,
    b_im: &Tensor,
    c_re: &Tensor,
    c_im: &Tensor,
    dt: &Tensor,
    l: usize,
    rate: f64,
) -> Result<Tensor> {
    let (h, n) = lambda_re.dims2()?;
    let hn = vec![h, n];
    let mut shapes = vec![hn; 8];
    shapes.push(vec![h]);
    let packed = pack(
        &[lambda_re, lambda_im, p_re, p_im, b_re, b_im, c_re, c_im, dt],
        &shapes,
    )?;
    on_host(
        packed,
        KernelOp {
            which: Which::S4,
            h,
            n,
            l,
            rate,
        },
    )
}

/// FFT causal convolution op: (u (B, H, L), K (H, L)) → y (B, H, L), no D.
#[derive(Debug)]
struct ConvOp {
    b: usize,
    h: usize,
    l: usize,
}

impl ConvOp {
    fn run<T: ConvFloat>(&self, u: &[T], k: &[T]) -> Result<Vec<T>> {
        let plan = FftConvPlan::<T>::new(self.l)?;
        let mut y = vec![T::ZERO; u.len()];
        fft_conv(&plan, u, k, None, self.b, self.h, &mut y)?;
        Ok(y)
    }
    fn grads<T: ConvFloat>(&self, u: &[T], k: &[T], g: &[T]) -> Result<(Vec<T>, Vec<T>)> {
        let plan = FftConvPlan::<T>::new(self.l)?;
        let (du, dk, _) = fft_conv_bwd(&plan, u, k, None, self.b, self.h, g)?;
        Ok((du, dk))
    }
}

fn slice<'a, T>(v: &'a [T], l: &Layout) -> candle_core::Result<&'a [T]> {
    let (a, b) = l
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::msg("fft_conv: input not contiguous"))?;
    Ok(&v[a..b])
}

impl CustomOp2 for ConvOp {
    fn name(&self) -> &'static str {
        "seqlab-fft-conv"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let w = candle_core::Error::wrap;
        let out = match (s1, s2) {
            (CpuStorage::F32(u), CpuStorage::F32(k)) => {
                CpuStorage::F32(self.run(slice(u, l1)?, slice(k, l2)?).map_err(w)?)
            }
            (CpuStorage::F64(u), CpuStorage::F64(k)) => {
                CpuStorage::F64(self.run(slice(u, l1)?, slice(k, l2)?).map_err(w)?)
            }
            _ => return Err(candle_core::Error::msg("fft_conv: f32 or f64, same dtype")),
        };
        Ok((out, Shape::from((self.b, self.h, self.l))))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        cuda_conv::LongConvCuda::new(self, cuda_conv::Part::Y).cuda_fwd(s1, l1, s2, l2)
    }

    fn bwd(
        &self,
        u: &Tensor,
        k: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        #[cfg(feature = "cuda")]
        if u.device().is_cuda() {
            use cuda_conv::{LongConvCuda, Part};
            let g = grad.contiguous()?;
            let du = k.apply_op2_no_bwd(&g, &LongConvCuda::new(self, Part::Du))?;
            let dk = u.apply_op2_no_bwd(&g, &LongConvCuda::new(self, Part::Dk))?;
            return Ok((Some(du), Some(dk)));
        }
        let w = candle_core::Error::wrap;
        let (du, dk) = match u.dtype() {
            DType::F32 => {
                let (du, dk) = self
                    .grads(
                        &u.flatten_all()?.to_vec1::<f32>()?,
                        &k.flatten_all()?.to_vec1::<f32>()?,
                        &grad.flatten_all()?.to_vec1::<f32>()?,
                    )
                    .map_err(w)?;
                (
                    Tensor::from_vec(du, u.shape(), u.device())?,
                    Tensor::from_vec(dk, k.shape(), k.device())?,
                )
            }
            _ => {
                let (du, dk) = self
                    .grads(
                        &u.flatten_all()?.to_vec1::<f64>()?,
                        &k.flatten_all()?.to_vec1::<f64>()?,
                        &grad.flatten_all()?.to_vec1::<f64>()?,
                    )
                    .map_err(w)?;
                (
                    Tensor::from_vec(du, u.shape(), u.device())?,
                    Tensor::from_vec(dk, k.shape(), k.device())?,
                )
            }
        };
        Ok((Some(du), Some(dk)))
    }
}

/// The CUDA side of [`ConvOp`]: `kernels/long_conv.cu` on candle's storage.
#[cfg(feature = "cuda")]
mod cuda_conv {
    use candle_core::backend::BackendStorage;
    use candle_core::cuda_backend::CudaDType;
    use candle_core::{CpuStorage, CudaStorage, CustomOp2, DType, Layout, Shape};

    use super::ConvOp;
    use crate::cuda::{
        long_conv_dk_dev, long_conv_du_dev, long_conv_fwd_dev, LongConvDims, LongConvFloat,
    };

    fn err(e: impl std::fmt::Display) -> candle_core::Error {
        candle_core::Error::Msg(format!("fft_conv (CUDA): {e}"))
    }

    /// The contiguous range of a storage as a device view.
    fn view<'a, T: CudaDType>(
        s: &'a CudaStorage,
        l: &Layout,
    ) -> candle_core::Result<candle_core::cuda_backend::cudarc::driver::CudaView<'a, T>> {
        let (a, b) = l
            .contiguous_offsets()
            .ok_or_else(|| err("input not contiguous"))?;
        Ok(s.as_cuda_slice::<T>()?.slice(a..b))
    }

    /// What a [`LongConvCuda`] computes from its two arguments.
    #[derive(Clone, Copy, Debug)]
    pub(super) enum Part {
        /// (u, K) → y (B, H, L).
        Y,
        /// (K, ∂y) → ∂u (B, H, L).
        Du,
        /// (u, ∂y) → ∂K (H, L).
        Dk,
    }

    /// One part of the long convolution as a (no-backward) op on two CUDA tensors.
    #[derive(Debug)]
    pub(super) struct LongConvCuda {
        dims: LongConvDims,
        part: Part,
    }

    impl LongConvCuda {
        pub(super) fn new(op: &ConvOp, part: Part) -> Self {
            let dims = LongConvDims {
                batch: op.b,
                h: op.h,
                l: op.l,
            };
            Self { dims, part }
        }

        fn run<T: LongConvFloat + CudaDType>(
            &self,
            s1: &CudaStorage,
            l1: &Layout,
            s2: &CudaStorage,
            l2: &Layout,
        ) -> candle_core::Result<CudaStorage> {
            let (x1, x2) = (view::<T>(s1, l1)?, view::<T>(s2, l2)?);
            let dev = s1.device().clone();
            let out = match self.part {
                Part::Y => long_conv_fwd_dev(&dev, self.dims, &x1, &x2)?,
                Part::Du => long_conv_du_dev(&dev, self.dims, &x1, &x2)?,
                Part::Dk => long_conv_dk_dev(&dev, self.dims, &x1, &x2)?,
            };
            Ok(CudaStorage::wrap_cuda_slice(out, dev))
        }
    }

    impl CustomOp2 for LongConvCuda {
        fn name(&self) -> &'static str {
            "seqlab-long-conv"
        }

        fn cpu_fwd(
            &self,
            _: &CpuStorage,
            _: &Layout,
            _: &CpuStorage,
            _: &Layout,
        ) -> candle_core::Result<(CpuStorage, Shape)> {
            Err(err("the CUDA op got CPU tensors"))
        }

        fn cuda_fwd(
            &self,
            s1: &CudaStorage,
            l1: &Layout,
            s2: &CudaStorage,
            l2: &Layout,
        ) -> candle_core::Result<(CudaStorage, Shape)> {
            let out = match s1.dtype() {
                DType::F32 => self.run::<f32>(s1, l1, s2, l2)?,
                DType::F64 => self.run::<f64>(s1, l1, s2, l2)?,
                dt => return Err(err(format!("dtype {dt:?} (f32 or f64)"))),
            };
            let LongConvDims { batch, h, l } = self.dims;
            let shape = match self.part {
                Part::Y | Part::Du => Shape::from((batch, h, l)),
                Part::Dk => Shape::from((h, l)),
            };
            Ok((out, shape))
        }
    }
}

/// Causal convolution y = K ∗ u by real FFTs of size 2L (S4 eq. (5), without D) on tensors,
/// differentiable w.r.t. u (B, H, L) and K (H, L). f32 or f64, same dtype.
///
/// On CUDA (feature `cuda`) the op runs `kernels/long_conv.cu`, a direct O(L²) convolution,
/// forward and backward; tensors on another device go through [`toeplitz_conv_tensor`].
pub fn fft_conv_tensor(u: &Tensor, k: &Tensor) -> Result<Tensor> {
    let (b, h, l) = check_conv_args("fft_conv", u, k)?;
    let has_kernel = u.device().is_cpu() || (cfg!(feature = "cuda") && u.device().is_cuda());
    if !has_kernel {
        return toeplitz_conv_tensor(u, k);
    }
    let u = u.contiguous()?;
    let k = k.contiguous()?;
    Ok(u.apply_op2(&k, ConvOp { b, h, l })?)
}

/// (B, H, L) of a causal convolution's arguments, or the error naming what is wrong.
fn check_conv_args(what: &str, u: &Tensor, k: &Tensor) -> Result<(usize, usize, usize)> {
    let (b, h, l) = u.dims3()?;
    if k.dims() != [h, l] || k.dtype() != u.dtype() {
        return Err(SsmError::Invalid(format!(
            "{what}: K {:?} {:?}, expected [{h}, {l}] {:?}",
            k.dims(),
            k.dtype(),
            u.dtype()
        )));
    }
    if !matches!(u.dtype(), DType::F32 | DType::F64) {
        return Err(SsmError::Invalid(format!("{what}: f32 or f64")));
    }
    if !u.device().same_device(k.device()) {
        return Err(SsmError::Invalid(format!(
            "{what}: u and K are on different devices"
        )));
    }
    Ok((b, h, l))
}

/// Causal convolution y = K ∗ u (S4 eq. (5), without D) as a Toeplitz matrix product of plain
/// tensor ops, so it runs and differentiates on any device:
/// `T[h, t, s] = K[h, t − s]` for `s ≤ t` (else 0) and `y[b, h, :] = T[h] · u[b, h, :]`.
/// O(B·H·L²) work and H·L² memory: the path of devices without a kernel of ours (CUDA runs
/// `kernels/long_conv.cu`, the CPU the FFT). Its backward is candle's `index_add`, which on CUDA
/// walks all L² indices in one thread per channel.
pub fn toeplitz_conv_tensor(u: &Tensor, k: &Tensor) -> Result<Tensor> {
    let (_, h, l) = check_conv_args("toeplitz_conv", u, k)?;
    let zero = Tensor::zeros((h, 1), k.dtype(), k.device())?;
    let padded = Tensor::cat(&[k, &zero], 1)?; // (H, L + 1); column L is the zero
    let idx: Vec<u32> = (0..l)
        .flat_map(|t| (0..l).map(move |s| if s <= t { (t - s) as u32 } else { l as u32 }))
        .collect();
    let idx = Tensor::from_vec(idx, l * l, k.device())?;
    let toeplitz = padded.index_select(&idx, 1)?.reshape((h, l, l))?;
    let ut = u.permute((1, 2, 0))?.contiguous()?; // (H, L, B)
    let y = toeplitz.matmul(&ut)?; // (H, L, B)
    Ok(y.permute((2, 0, 1))?.contiguous()?)
}

//! The element type of an SSM state: a real `T`, or `Cplx<T>` for complex A (S4D-style
//! diagonal SSMs). One generic scan serves both; for real states every method below compiles to
//! the plain float operation, so the real path keeps its vectorised inner loops.
//!
//! Complex tensors cross the public API as real buffers with a trailing (re, im) pair — torch's
//! `view_as_real` layout — so a complex (D, N) is a real (D, N, 2), and an input-dependent complex
//! B of logical shape (batch, N, len) is the real (batch, N, 2·len) that `selective_scan_ref` takes.
//!
//! Gradients of a real loss ℒ with respect to a complex w are returned in the same layout as
//! (∂ℒ/∂Re w, ∂ℒ/∂Im w), which is torch's convention for `w.grad`. In that convention a
//! holomorphic step w = f(v) back-propagates as ḡ_v = conj(f′(v))·ḡ_w, which is why the backward
//! pass conjugates.

use crate::float::Float;

/// A complex number (re, im).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Cplx<T> {
    /// Real part.
    pub re: T,
    /// Imaginary part.
    pub im: T,
}

/// Arithmetic the scan needs from a state element.
pub(crate) trait Elem<T: Float>: Copy + Send + Sync + Default + 'static {
    /// Reals per element in the public buffer layout (1 real, 2 complex).
    const WIDTH: usize;
    /// y = Y_SCALE · Re(Σ C·x): 1 for real, 2 for complex (the conjugate pair not stored).
    const Y_SCALE: f64;
    fn zero() -> Self;
    fn add(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
    fn scale(self, s: T) -> Self;
    fn conj(self) -> Self;
    /// out[n] = exp(s · a[n]).
    fn exp_scaled(a: &[Self], s: T, out: &mut [Self]);
    /// Re Σ c[n]·x[n].
    fn dot_re(c: &[Self], x: &[Self]) -> T;
    /// Re Σ conj(a[n])·b[n].
    fn dot_conj_re(a: &[Self], b: &[Self]) -> T;
    /// Element `i` of a public real buffer.
    fn read(buf: &[T], i: usize) -> Self;
    /// Stores element `i` into a public real buffer.
    fn write(self, buf: &mut [T], i: usize);
}

impl<T: Float> Elem<T> for T {
    const WIDTH: usize = 1;
    const Y_SCALE: f64 = 1.0;
    #[inline(always)]
    fn zero() -> Self {
        T::ZERO
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        self + o
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        self * o
    }
    #[inline(always)]
    fn scale(self, s: T) -> Self {
        self * s
    }
    #[inline(always)]
    fn conj(self) -> Self {
        self
    }
    #[inline(always)]
    fn exp_scaled(a: &[Self], s: T, out: &mut [Self]) {
        for (o, &a) in out.iter_mut().zip(a) {
            *o = (s * a).exp_fast();
        }
    }
    #[inline(always)]
    fn dot_re(c: &[Self], x: &[Self]) -> T {
        crate::float::dot(c, x)
    }
    #[inline(always)]
    fn dot_conj_re(a: &[Self], b: &[Self]) -> T {
        crate::float::dot(a, b)
    }
    #[inline(always)]
    fn read(buf: &[T], i: usize) -> Self {
        buf[i]
    }
    #[inline(always)]
    fn write(self, buf: &mut [T], i: usize) {
        buf[i] = self;
    }
}

impl<T: Float> Elem<T> for Cplx<T> {
    const WIDTH: usize = 2;
    const Y_SCALE: f64 = 2.0;
    #[inline(always)]
    fn zero() -> Self {
        Cplx {
            re: T::ZERO,
            im: T::ZERO,
        }
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        Cplx {
            re: self.re + o.re,
            im: self.im + o.im,
        }
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        Cplx {
            re: self.re * o.re - self.im * o.im,
            im: self.re * o.im + self.im * o.re,
        }
    }
    #[inline(always)]
    fn scale(self, s: T) -> Self {
        Cplx {
            re: self.re * s,
            im: self.im * s,
        }
    }
    #[inline(always)]
    fn conj(self) -> Self {
        Cplx {
            re: self.re,
            im: -self.im,
        }
    }
    #[inline]
    fn exp_scaled(a: &[Self], s: T, out: &mut [Self]) {
        for (o, &a) in out.iter_mut().zip(a) {
            let m = (s * a.re).exp();
            let th = s * a.im;
            *o = Cplx {
                re: m * th.cos(),
                im: m * th.sin(),
            };
        }
    }
    #[inline]
    fn dot_re(c: &[Self], x: &[Self]) -> T {
        let mut acc = T::ZERO;
        for (c, x) in c.iter().zip(x) {
            acc += c.re * x.re - c.im * x.im;
        }
        acc
    }
    #[inline]
    fn dot_conj_re(a: &[Self], b: &[Self]) -> T {
        let mut acc = T::ZERO;
        for (a, b) in a.iter().zip(b) {
            acc += a.re * b.re + a.im * b.im;
        }
        acc
    }
    #[inline(always)]
    fn read(buf: &[T], i: usize) -> Self {
        Cplx {
            re: buf[2 * i],
            im: buf[2 * i + 1],
        }
    }
    #[inline(always)]
    fn write(self, buf: &mut [T], i: usize) {
        buf[2 * i] = self.re;
        buf[2 * i + 1] = self.im;
    }
}

//! Safe wrappers over `csrc/ops.cpp`: libtorch operations tch's C API does
//! not reach (LeakyReLU with a slope, gradients reset to undefined, the
//! fused Adam update), and `csrc/alloc.cpp`'s caching CPU allocator.

use tch::Tensor;

extern "C" {
    fn t2i_leaky_relu(x: *const torch_sys::C_tensor, slope: f64) -> *mut torch_sys::C_tensor;
    fn t2i_reset_grad(param: *mut torch_sys::C_tensor) -> i32;
    fn t2i_backward_into(
        loss: *const torch_sys::C_tensor,
        params: *const *mut torch_sys::C_tensor,
        n: i64,
    ) -> i32;
    fn t2i_version(x: *const torch_sys::C_tensor) -> i64;
    fn t2i_grad_enabled() -> i32;
    fn t2i_cache_cpu_memory(limit: u64) -> i32;
    fn t2i_adam_step(
        params: *const *mut torch_sys::C_tensor,
        exp_avgs: *const *mut torch_sys::C_tensor,
        exp_avg_sqs: *const *mut torch_sys::C_tensor,
        n: i64,
        step: i64,
        lr: f64,
        beta1: f64,
        beta2: f64,
        eps: f64,
    ) -> i32;
}

/// `leaky_relu(x, slope)`: one kernel forward and one backward.
///
/// # Panics
/// If libtorch refuses the input (as tch's own operations do).
pub fn leaky_relu(x: &Tensor, slope: f64) -> Tensor {
    // SAFETY: `x` is a live tensor; the result is a new handle we own
    let out = unsafe { t2i_leaky_relu(x.as_ptr(), slope) };
    assert!(
        !out.is_null(),
        "leaky_relu failed on a {:?} tensor",
        x.size()
    );
    // SAFETY: a fresh `new torch::Tensor` from the C side, owned by the result
    unsafe { Tensor::from_ptr(out) }
}

/// The version counter of `x`: it changes with every in-place change of the
/// values (`copy_`, optimiser steps); None where the tensor has none.
pub fn version(x: &Tensor) -> Option<i64> {
    // SAFETY: `x` is a live tensor, only read
    let v = unsafe { t2i_version(x.as_ptr()) };
    (v >= 0).then_some(v)
}

/// Whether operations on this thread record gradients (false under
/// `tch::no_grad`).
pub fn grad_enabled() -> bool {
    // SAFETY: reads a thread-local flag
    unsafe { t2i_grad_enabled() == 1 }
}

/// Drops the gradient of `param` (the next backward stores its gradient
/// instead of adding it to zeros).
pub fn reset_grad(param: &mut Tensor) {
    // SAFETY: `param` is a live tensor; only its gradient slot changes
    let rc = unsafe { t2i_reset_grad(param.as_mut_ptr()) };
    debug_assert_eq!(rc, 0);
}

/// Back-propagates the scalar `loss` into the gradients of `params` only
/// (PyTorch's `loss.backward(inputs=params)`): other leaves of the graph are
/// left alone and the work only their gradients need is skipped (the weight
/// gradients of a discriminator that a generator's loss passes through).
///
/// # Panics
/// If libtorch refuses the backward pass (as `Tensor::backward` does).
pub fn backward_into(loss: &Tensor, params: &mut [Tensor]) {
    let p = params
        .iter_mut()
        .map(|t| t.as_mut_ptr())
        .collect::<Vec<_>>();
    // SAFETY: a live loss and an array of live handles; gradients accumulate
    let rc = unsafe { t2i_backward_into(loss.as_ptr(), p.as_ptr(), p.len() as i64) };
    assert_eq!(rc, 0, "libtorch refused the backward pass");
}

/// Outcome of [`adam_step`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdamOutcome {
    Updated,
    /// A gradient held a NaN or an infinity: nothing changed.
    Skipped,
}

/// One fused Adam update (torch.optim.Adam without weight decay or amsgrad,
/// libtorch's `_fused_adam_`) of the parameters with a gradient, as update
/// number `step`; skipped as a whole when a gradient is not finite.
///
/// # Panics
/// If the three lists differ in length, or libtorch refuses the update.
#[allow(clippy::too_many_arguments)]
pub fn adam_step(
    params: &mut [Tensor],
    exp_avgs: &mut [Tensor],
    exp_avg_sqs: &mut [Tensor],
    step: i64,
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
) -> AdamOutcome {
    assert!(params.len() == exp_avgs.len() && params.len() == exp_avg_sqs.len());
    let ptrs = |v: &mut [Tensor]| v.iter_mut().map(|t| t.as_mut_ptr()).collect::<Vec<_>>();
    let (p, m, v) = (ptrs(params), ptrs(exp_avgs), ptrs(exp_avg_sqs));
    // SAFETY: three arrays of live handles of equal length, updated in place
    let rc = unsafe {
        t2i_adam_step(
            p.as_ptr(),
            m.as_ptr(),
            v.as_ptr(),
            p.len() as i64,
            step,
            lr,
            beta1,
            beta2,
            eps,
        )
    };
    match rc {
        1 => AdamOutcome::Updated,
        0 => AdamOutcome::Skipped,
        _ => panic!("libtorch refused the fused Adam update"),
    }
}

/// Makes libtorch keep freed CPU blocks of 1 MiB and more for reuse, up to
/// `limit` bytes, instead of returning them to the C library (which unmaps
/// large ones, so each training iteration paid page faults and zeroing for
/// its activations again). Process-wide; call once before the work. Returns
/// whether libtorch accepted it.
pub fn cache_cpu_memory(limit: u64) -> bool {
    // SAFETY: installs an allocator object that lives for the process
    unsafe { t2i_cache_cpu_memory(limit) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn backward_into_fills_only_the_given_leaves_with_the_full_gradients() {
        let opts = (Kind::Float, Device::Cpu);
        let g = Tensor::randn([3, 4], opts).set_requires_grad(true);
        let d = Tensor::randn([4, 2], opts).set_requires_grad(true);
        let x = Tensor::randn([5, 3], opts);
        let loss = || x.mm(&g).tanh().mm(&d).square().sum(Kind::Float);
        loss().backward();
        let (full_g, full_d) = (g.grad().copy(), d.grad().copy());
        assert!(full_d.abs().sum(Kind::Float).double_value(&[]) > 0.0);
        let mut g = g.detach().set_requires_grad(true);
        let d = d.detach().set_requires_grad(true);
        let loss = x.mm(&g).tanh().mm(&d).square().sum(Kind::Float);
        backward_into(&loss, std::slice::from_mut(&mut g));
        assert!(g.grad().allclose(&full_g, 1e-6, 1e-6, false));
        assert!(!d.grad().defined());
    }
}

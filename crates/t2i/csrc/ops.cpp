// libtorch operations tch's C API does not reach, for the training loop's
// speed: LeakyReLU with its slope (one kernel forward and one backward, where
// max(x, slope * x) takes five), resetting a gradient to undefined (PyTorch's
// `zero_grad(set_to_none=True)`: the next backward stores its gradient
// instead of adding it to zeros), and libtorch's fused Adam with the fused
// non-finite check of AMP's grad scaler (one pass over each parameter).
// Every function catches libtorch's exceptions and reports them by its return
// value.
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/autograd/autograd.h>

#include <vector>

extern "C" {

// leaky_relu(x, slope) as a new tensor, or null on an error.
at::Tensor* t2i_leaky_relu(const at::Tensor* x, double slope) {
  try {
    return new at::Tensor(at::leaky_relu(*x, slope));
  } catch (...) {
    return nullptr;
  }
}

// The version counter of `x` (bumped by every in-place change of its
// values), or -1 where it has none.
int64_t t2i_version(const at::Tensor* x) {
  try {
    return static_cast<int64_t>(x->_version());
  } catch (...) {
    return -1;
  }
}

// Whether operations on this thread record gradients (not under no_grad).
int t2i_grad_enabled() {
  return at::GradMode::is_enabled() ? 1 : 0;
}

// Drops the gradient of `param`. Returns 0, or -1 on an error.
int t2i_reset_grad(at::Tensor* param) {
  try {
    param->mutable_grad().reset();
    return 0;
  } catch (...) {
    return -1;
  }
}

// Back-propagates the scalar `loss` into the gradients of the `n` leaves
// `params` only (`loss.backward(inputs=params)`): the graph's other leaves
// get nothing, and the work only they need (the weight gradients of a frozen
// or other network the loss passes through) is skipped. Returns 0, or -1 on
// an error.
int t2i_backward_into(const at::Tensor* loss, at::Tensor** params, int64_t n) {
  try {
    std::vector<at::Tensor> inputs;
    inputs.reserve(n);
    for (int64_t i = 0; i < n; ++i) {
      inputs.push_back(*params[i]);
    }
    torch::autograd::backward({*loss}, {}, false, false, inputs);
    return 0;
  } catch (...) {
    return -1;
  }
}

// One Adam update (torch.optim.Adam, no weight decay, no amsgrad) of the `n`
// parameters whose gradient is defined, as step number `step` (>= 1), by
// libtorch's fused kernel. If any gradient holds a NaN or an infinity,
// nothing changes. Returns 1 if it updated, 0 if it skipped, -1 on an error.
int t2i_adam_step(at::Tensor** params, at::Tensor** exp_avgs, at::Tensor** exp_avg_sqs,
                  int64_t n, int64_t step, double lr, double beta1, double beta2,
                  double eps) {
  try {
    c10::AutoGradMode no_grad(false);
    std::vector<at::Tensor> p, g, m, v, steps;
    for (int64_t i = 0; i < n; ++i) {
      const at::Tensor& grad = params[i]->grad();
      if (!grad.defined()) {
        continue;
      }
      p.push_back(*params[i]);
      g.push_back(grad);
      m.push_back(*exp_avgs[i]);
      v.push_back(*exp_avg_sqs[i]);
    }
    if (p.empty()) {
      return 1;
    }
    const auto opts = at::TensorOptions().dtype(at::kFloat).device(p[0].device());
    auto found_inf = at::zeros({1}, opts);
    at::_amp_foreach_non_finite_check_and_unscale_(g, found_inf, at::ones({1}, opts));
    if (found_inf.item<float>() != 0.0f) {
      return 0;
    }
    for (size_t i = 0; i < p.size(); ++i) {
      steps.push_back(at::full({}, static_cast<double>(step), opts));
    }
    at::_fused_adam_(p, g, m, v, {}, steps, lr, beta1, beta2, /*weight_decay=*/0.0, eps,
                     /*amsgrad=*/false, /*maximize=*/false);
    return 1;
  } catch (...) {
    return -1;
  }
}
}

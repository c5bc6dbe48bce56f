// libtorch's automatic mixed precision (autocast) for the calling thread,
// for t2i's `--precision bf16`: tch's C API reaches only CUDA's autocast, and
// CPU autocast is what makes bf16 run on CPUs with AVX512-BF16 or AMX.
#include <ATen/autocast_mode.h>

extern "C" {

// Turns autocast on for CUDA (`cuda` != 0) or the CPU, casting to bfloat16
// (`half` == 0) or float16. Returns 1 if it was already on, 0 if not, -1 on
// an error.
int t2i_autocast_enter(int cuda, int half) {
  try {
    const auto device = cuda ? at::kCUDA : at::kCPU;
    const int was_on = at::autocast::is_autocast_enabled(device) ? 1 : 0;
    at::autocast::set_autocast_dtype(device, half ? at::kHalf : at::kBFloat16);
    at::autocast::set_autocast_enabled(device, true);
    at::autocast::increment_nesting();
    return was_on;
  } catch (...) {
    return -1;
  }
}

// Ends a region `t2i_autocast_enter` began (`was_on`: what it returned); the
// outermost region's end drops the cached low-precision copies of weights.
int t2i_autocast_exit(int cuda, int was_on) {
  try {
    const auto device = cuda ? at::kCUDA : at::kCPU;
    if (at::autocast::decrement_nesting() == 0) {
      at::autocast::clear_cache();
    }
    at::autocast::set_autocast_enabled(device, was_on == 1);
    return 0;
  } catch (...) {
    return -1;
  }
}
}

// Floating-point operations of the matrix products and convolutions libtorch
// runs while a count is open, for `t2i bench` (FLOPs per iteration against
// the machine's measured peak). A RecordFunction callback of the counting
// thread (which libtorch hands on to its autograd workers) reads the
// shapes of every aten::convolution, aten::convolution_backward, aten::mm,
// aten::addmm, aten::bmm and aten::baddbmm call (a multiply-add counts 2);
// element-wise work is not counted.
#include <ATen/record_function.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace {

std::atomic<uint64_t> g_flops{0};
// one counting thread at a time (its nested counts share the count)
std::recursive_mutex g_lock;
thread_local int t_open = 0;
thread_local at::CallbackHandle t_handle = 0;

// The multiplier of a forward convolution's output size, kept from the start
// callback (inputs) to the end callback (outputs).
struct ConvContext : at::ObserverContext {
  uint64_t per_output = 0;
};

uint64_t numel(const c10::IValue& v) {
  return v.isTensor() ? static_cast<uint64_t>(v.toTensor().numel()) : 0;
}

// Multiply-adds per element of the output of a convolution with `weight`
// ([out, in / groups, k...] or, transposed, [in, out / groups, k...]).
uint64_t macs_per_element(const at::Tensor& weight) {
  uint64_t k = 1;
  for (int64_t d = 1; d < weight.dim(); ++d) {
    k *= static_cast<uint64_t>(weight.size(d));
  }
  return k;
}

std::unique_ptr<at::ObserverContext> on_start(const at::RecordFunction& fn) {
  const char* name = fn.name();
  if (std::strncmp(name, "aten::", 6) != 0) {
    return nullptr;
  }
  const char* op = name + 6;
  const auto in = fn.inputs();
  auto tensor = [&](size_t i) -> const at::Tensor* {
    return i < in.size() && in[i].isTensor() ? &in[i].toTensor() : nullptr;
  };
  uint64_t flops = 0;
  if (std::strcmp(op, "mm") == 0 || std::strcmp(op, "addmm") == 0) {
    const size_t first = op[0] == 'a' ? 1 : 0;
    const auto* a = tensor(first);
    const auto* b = tensor(first + 1);
    if (a && b && a->dim() == 2 && b->dim() == 2) {
      flops = 2ull * a->size(0) * a->size(1) * b->size(1);
    }
  } else if (std::strcmp(op, "bmm") == 0 || std::strcmp(op, "baddbmm") == 0) {
    const size_t first = op[0] == 'b' && op[1] == 'a' ? 1 : 0;
    const auto* a = tensor(first);
    const auto* b = tensor(first + 1);
    if (a && b && a->dim() == 3 && b->dim() == 3) {
      flops = 2ull * a->size(0) * a->size(1) * a->size(2) * b->size(2);
    }
  } else if (std::strcmp(op, "convolution") == 0) {
    // (input, weight, bias, stride, padding, dilation, transposed, ...)
    const auto* x = tensor(0);
    const auto* w = tensor(1);
    const bool transposed = in.size() > 6 && in[6].isBool() && in[6].toBool();
    if (x && w) {
      if (transposed) {
        flops = 2ull * numel(in[0]) * macs_per_element(*w);
      } else {
        auto ctx = std::make_unique<ConvContext>();
        ctx->per_output = 2ull * macs_per_element(*w);
        return ctx;
      }
    }
  } else if (std::strcmp(op, "convolution_backward") == 0) {
    // (grad_output, input, weight, bias_sizes, stride, padding, dilation,
    //  transposed, output_padding, groups, output_mask): the gradients of
    // the input and of the weight each cost the forward's products
    const auto* w = tensor(2);
    const bool transposed = in.size() > 7 && in[7].isBool() && in[7].toBool();
    if (w && in.size() > 10 && in[10].isBoolList()) {
      const auto mask = in[10].toBoolList();
      const uint64_t fwd = 2ull * numel(in[transposed ? 1 : 0]) * macs_per_element(*w);
      const int n = (mask.size() > 0 && mask.get(0)) + (mask.size() > 1 && mask.get(1));
      flops = fwd * static_cast<uint64_t>(n);
    }
  }
  if (flops) {
    g_flops.fetch_add(flops, std::memory_order_relaxed);
  }
  return nullptr;
}

void on_end(const at::RecordFunction& fn, at::ObserverContext* ctx) {
  if (!ctx) {
    return;
  }
  const auto& out = fn.outputs();
  if (!out.empty()) {
    const auto per = static_cast<ConvContext*>(ctx)->per_output;
    g_flops.fetch_add(per * numel(out[0]), std::memory_order_relaxed);
  }
}

// The op profile of `t2i bench --profile`: wall time and calls per name of
// the outermost recorded functions of the profiling thread (and of the
// autograd workers it hands the callback to): an op called inside another
// is part of its caller's time, so the rows add up to the profiled call.
struct OpStat {
  uint64_t calls = 0;
  uint64_t ns = 0;
};
std::mutex g_prof_lock;
std::map<std::string, OpStat> g_prof;
thread_local int t_depth = 0;
thread_local at::CallbackHandle t_prof_handle = 0;

struct TimeContext : at::ObserverContext {
  std::chrono::steady_clock::time_point t0;
  bool outermost = false;
};

std::unique_ptr<at::ObserverContext> on_prof_start(const at::RecordFunction&) {
  auto ctx = std::make_unique<TimeContext>();
  ctx->outermost = t_depth++ == 0;
  ctx->t0 = std::chrono::steady_clock::now();
  return ctx;
}

void on_prof_end(const at::RecordFunction& fn, at::ObserverContext* ctx) {
  --t_depth;
  auto* t = static_cast<TimeContext*>(ctx);
  if (!t || !t->outermost) {
    return;
  }
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                      std::chrono::steady_clock::now() - t->t0)
                      .count();
  std::string name = fn.name();
  // the autograd engine names a node "autograd::engine::evaluate_function: X"
  const auto colon = name.rfind(": ");
  if (colon != std::string::npos) {
    name = name.substr(colon + 2);
  }
  std::lock_guard<std::mutex> g(g_prof_lock);
  auto& st = g_prof[name];
  st.calls += 1;
  st.ns += static_cast<uint64_t>(ns);
}

}  // namespace

extern "C" {

// Starts an op profile on the calling thread (clearing the last one).
// Returns 0, or -1 on an error.
int t2i_profile_begin() {
  try {
    {
      std::lock_guard<std::mutex> g(g_prof_lock);
      g_prof.clear();
    }
    t_depth = 0;
    t_prof_handle = at::addThreadLocalCallback(at::RecordFunctionCallback(on_prof_start, on_prof_end));
    return 0;
  } catch (...) {
    return -1;
  }
}

// Ends the profile of this thread and writes it to `buf` as lines
// "name\tcalls\tnanoseconds\n" (at most `cap` bytes, not terminated);
// returns the length of the whole text (call again with a larger buffer
// when it exceeds `cap`: the profile is kept until the next begin).
size_t t2i_profile_end(char* buf, size_t cap) {
  if (t_prof_handle != 0) {
    try {
      at::removeCallback(t_prof_handle);
    } catch (...) {
    }
    t_prof_handle = 0;
  }
  std::string text;
  {
    std::lock_guard<std::mutex> g(g_prof_lock);
    for (const auto& [name, st] : g_prof) {
      text += name + "\t" + std::to_string(st.calls) + "\t" + std::to_string(st.ns) + "\n";
    }
  }
  std::memcpy(buf, text.data(), std::min(cap, text.size()));
  return text.size();
}

// Starts counting on the calling thread (nested counts share one counter; a
// count on another thread waits for this one to end). Returns 0, or -1 on
// an error.
int t2i_flops_begin() {
  g_lock.lock();
  try {
    if (t_open++ == 0) {
      g_flops.store(0);
      t_handle = at::addThreadLocalCallback(
          at::RecordFunctionCallback(on_start, on_end).needsInputs(true).needsOutputs(true));
    }
    return 0;
  } catch (...) {
    --t_open;
    g_lock.unlock();
    return -1;
  }
}

// Ends a count `t2i_flops_begin` opened on this thread; returns the FLOPs
// counted since the outermost one began.
uint64_t t2i_flops_end() {
  const uint64_t n = g_flops.load();
  if (--t_open == 0) {
    try {
      at::removeCallback(t_handle);
    } catch (...) {
    }
  }
  g_lock.unlock();
  return n;
}
}

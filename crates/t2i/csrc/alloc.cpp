// A caching CPU allocator for libtorch. A training step allocates and frees
// the same large activations every iteration; libtorch's default CPU
// allocator hands each to the C library, which maps blocks above 32 MiB
// fresh from the kernel and unmaps them on free, so every iteration pays page
// faults and page zeroing again (a quarter of the CPU time of StackGAN
// Stage-II's step). Blocks of 1 MiB and more are kept here when freed, by
// size (rounded up to 1/8 of their power of two), and handed out again; the
// cache holds at most `limit` bytes (a free beyond it goes back to the
// system). Smaller blocks go to the C library as before.
#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace {

constexpr size_t kMinCached = size_t(1) << 20;

// n rounded up to a multiple of 1/8 of its highest power of two (at most
// 12.5% more), so batches of slightly different shapes share blocks.
size_t bucket(size_t n) {
  size_t p = 1;
  while (p * 2 <= n) {
    p *= 2;
  }
  const size_t step = p / 8;
  return (n + step - 1) / step * step;
}

struct Cache {
  std::mutex mu;
  std::unordered_map<size_t, std::vector<void*>> free_blocks;
  std::unordered_map<void*, size_t> sizes;  // live and cached big blocks
  size_t cached = 0;
  size_t limit = 0;
};

Cache& cache() {
  static Cache* c = new Cache();  // never destroyed: frees may come at exit
  return *c;
}

// Every block's deleter: a big block goes back to the cache, any other to
// the C library.
void delete_block(void* p) {
  Cache& c = cache();
  std::unique_lock<std::mutex> lock(c.mu);
  auto it = c.sizes.find(p);
  if (it == c.sizes.end()) {
    lock.unlock();
    c10::free_cpu(p);
    return;
  }
  const size_t n = it->second;
  if (c.cached + n <= c.limit) {
    c.free_blocks[n].push_back(p);
    c.cached += n;
    return;
  }
  c.sizes.erase(it);
  lock.unlock();
  c10::free_cpu(p);
}

struct CachingCpuAllocator final : c10::Allocator {
  c10::DataPtr allocate(size_t n) override {
    if (n < kMinCached) {
      void* p = c10::alloc_cpu(n);
      return {p, p, &delete_block, c10::Device(c10::DeviceType::CPU)};
    }
    const size_t b = bucket(n);
    Cache& c = cache();
    {
      std::lock_guard<std::mutex> lock(c.mu);
      auto it = c.free_blocks.find(b);
      if (it != c.free_blocks.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        c.cached -= b;
        return {p, p, &delete_block, c10::Device(c10::DeviceType::CPU)};
      }
    }
    void* p = c10::alloc_cpu(b);
    {
      std::lock_guard<std::mutex> lock(c.mu);
      c.sizes[p] = b;
    }
    return {p, p, &delete_block, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &delete_block; }

  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }
};

}  // namespace

extern "C" {

// Makes the caching allocator libtorch's CPU allocator, keeping at most
// `limit` bytes of freed blocks. Returns 0, or -1 on an error.
int t2i_cache_cpu_memory(uint64_t limit) {
  try {
    static CachingCpuAllocator* alloc = new CachingCpuAllocator();
    cache().limit = static_cast<size_t>(limit);
    c10::SetCPUAllocator(alloc, /*priority=*/1);
    return 0;
  } catch (...) {
    return -1;
  }
}
}

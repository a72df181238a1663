// allocPages(bytes) -> ArrayBuffer: zeroed memory of its own mapping, with
// transparent huge pages asked for (madvise MADV_HUGEPAGE; a kernel set to
// "never" gives 4 KiB pages and nothing else changes). For the decode cache
// read back into memory (lib/data/imagefolder.ts): first-touch of 4 KiB pages
// cost 3.6 us each on the VM of docs/benchmarks.md (76 MB: 0.27 s of CPU, as
// much as decoding the 300 JPEGs in it), 2 MiB pages 0.01-0.03 s. Freed when
// the ArrayBuffer is collected; its size counts as V8 external memory.
#include <sys/mman.h>

#include <cstdint>
#include <string>

#include "addon/common.h"

namespace sln::addon {

namespace {

constexpr size_t kHuge = size_t{2} << 20;

struct Mapping {
  void* base;
  size_t length;
};

Napi::Value AllocPages(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "allocPages(bytes: number) -> ArrayBuffer");
    const double want = info[0].As<Napi::Number>().DoubleValue();
    if (!(want >= 1 && want <= 1e15) || want != static_cast<double>(static_cast<int64_t>(want)))
      throw Napi::RangeError::New(env, "allocPages: bytes must be a positive integer, got " + std::to_string(want));
    const size_t bytes = static_cast<size_t>(want);
    // one huge page more, so that the buffer can start on a 2 MiB boundary
    const size_t length = bytes + kHuge;
    void* base = mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) throw make_error(env, "SLN_OUT_OF_MEMORY", "allocPages: cannot map " + std::to_string(bytes) + " bytes", ErrorKind::OutOfMemory);
    madvise(base, length, MADV_HUGEPAGE);   // advice only: EINVAL where THP is not built in
    const uintptr_t aligned = (reinterpret_cast<uintptr_t>(base) + kHuge - 1) & ~(uintptr_t{kHuge} - 1);
    auto* m = new Mapping{base, length};
    Napi::ArrayBuffer ab;
    try {
      ab = Napi::ArrayBuffer::New(
          env, reinterpret_cast<void*>(aligned), bytes,
          [](Napi::Env env, void*, Mapping* m) {
            Napi::MemoryManagement::AdjustExternalMemory(env, -static_cast<int64_t>(m->length));
            munmap(m->base, m->length);
            delete m;
          },
          m);
    } catch (...) {   // a runtime without external buffers: nothing is left mapped
      munmap(base, length);
      delete m;
      throw;
    }
    Napi::MemoryManagement::AdjustExternalMemory(env, static_cast<int64_t>(length));
    return ab;
  });
}

void InitPages(Napi::Env env, Napi::Object exports) {
  exports.Set("allocPages", Napi::Function::New(env, AllocPages, "allocPages"));
}
SLN_ADDON_INIT(InitPages);

}  // namespace

}  // namespace sln::addon

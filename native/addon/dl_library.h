// The optional libraries of this package that the addon loads on demand with
// dlopen (CUDA: cuda_loader.cpp, MPI: mpi_loader.cpp, NCCL: nccl_loader.cpp):
// opening, the ABI check, the symbol lookups and the JS xxxLoad(path) /
// xxxDescribe() entries, written once. Every failure is an sln::Error with the
// library's *_LOAD code naming the file and how to rebuild it. A loaded
// library is never unloaded.
#pragma once
#include <memory>
#include <mutex>
#include <string>

#include "addon/common.h"

namespace sln::addon {

struct DlSpec {
  const char* what;         // "CUDA": "the CUDA library <path> ..."
  const char* code;         // the error code, e.g. "SLN_CUDA_LOAD"
  int flags;                // dlopen's
  const char* open_hint;    // after a failed dlopen
  const char* rebuild;      // after a missing symbol or another ABI version
  const char* abi_symbol;   // int (*)(void): the library's ABI version
  int abi;                  // the version this addon is built against
};

// An opened library whose ABI version matched; closed again by the destructor
// unless release()d (a load that fails half-way leaves nothing open).
class DlOpen {
 public:
  DlOpen(const DlSpec& spec, const std::string& path);   // throws
  ~DlOpen();
  DlOpen(const DlOpen&) = delete;
  DlOpen& operator=(const DlOpen&) = delete;
  // The named symbol; throws when the library lacks it.
  template <typename Fn>
  Fn sym(const char* name) const {
    return reinterpret_cast<Fn>(lookup(name));
  }
  const std::string& path() const { return path_; }
  int abi() const { return abi_; }
  void* release();   // the handle, kept open for the process

 private:
  void* lookup(const char* name) const;
  const DlSpec& spec_;
  std::string path_;
  void* handle_ = nullptr;
  int abi_ = 0;
};

// A loaded library: its file, its ABI version and its functions. Each library
// lists its functions once, X(prefix, name) for the symbol prefix_name of type
// prefix_name_fn, and derives from DlLib:
//   #define SLN_MPI_FUNCTIONS(X) X(sln_mpi, init) X(sln_mpi, barrier)
//   struct MpiLib : DlLib {
//     SLN_MPI_FUNCTIONS(SLN_DL_MEMBER)
//     explicit MpiLib(const DlOpen& dl) : DlLib(dl) { SLN_MPI_FUNCTIONS(SLN_DL_LOOKUP) }
//   };
// then load_library<MpiLib>(spec, path) opens it and looks every function up.
struct DlLib {
  explicit DlLib(const DlOpen& dl) : path(dl.path()), abi(dl.abi()) {}
  std::string path;
  int abi;
};
#define SLN_DL_MEMBER(prefix, name) prefix##_##name##_fn name = nullptr;
#define SLN_DL_LOOKUP(prefix, name) name = dl.sym<prefix##_##name##_fn>(#prefix "_" #name);

template <typename Lib>
std::unique_ptr<Lib> load_library(const DlSpec& spec, const std::string& path) {
  DlOpen dl(spec, path);
  auto lib = std::make_unique<Lib>(dl);
  dl.release();   // every symbol was found: the library stays
  return lib;
}

// The JS entry xxxLoad(path): loads the library into `slot` (under `mu`) once;
// the same path again does nothing, another path is an error.
template <typename Lib>
Napi::Value load_entry(const Napi::CallbackInfo& info, const char* fn, const DlSpec& spec, std::mutex& mu,
                       std::unique_ptr<Lib>& slot) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, std::string(fn) + "(path: string)");
    std::string path = info[0].As<Napi::String>();
    std::lock_guard<std::mutex> lk(mu);
    if (slot) {
      if (slot->path != path)
        SLN_FAIL(InvalidArgument, spec.code, fn << ": " << slot->path << " is already loaded; cannot load " << path << " as well");
      return env.Undefined();
    }
    slot = load_library<Lib>(spec, path);
    return env.Undefined();
  });
}

// The JS entry xxxDescribe(): the library's describe(out, size) text, or null when not loaded.
template <typename Lib>
Napi::Value describe_entry(const Napi::CallbackInfo& info, std::mutex& mu, const std::unique_ptr<Lib>& slot) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    std::lock_guard<std::mutex> lk(mu);
    if (!slot) return env.Null();
    char out[1024] = {0};
    slot->describe(out, sizeof out);
    return Napi::String::New(env, out);
  });
}

}  // namespace sln::addon

// dlopen, the ABI check and dlsym for the optional libraries (addon/dl_library.h).
#include "addon/dl_library.h"

#include <dlfcn.h>

namespace sln::addon {

DlOpen::DlOpen(const DlSpec& spec, const std::string& path) : spec_(spec), path_(path) {
  dlerror();
  handle_ = dlopen(path.c_str(), spec.flags);
  if (!handle_) {
    const char* e = dlerror();
    SLN_FAIL(Library, spec.code, "cannot load the " << spec.what << " library " << path << ": "
                                                    << (e ? e : "unknown error") << "; " << spec.open_hint);
  }
  try {   // the destructor does not run for a constructor that throws
    abi_ = sym<int (*)()>(spec.abi_symbol)();
    if (abi_ != spec.abi)
      SLN_FAIL(Library, spec.code, "the " << spec.what << " library " << path << " has ABI version " << abi_
                                          << ", this addon needs " << spec.abi << ": " << spec.rebuild);
  } catch (...) {
    dlclose(handle_);
    throw;
  }
}

DlOpen::~DlOpen() {
  if (handle_) dlclose(handle_);
}

void* DlOpen::release() {
  void* h = handle_;
  handle_ = nullptr;
  return h;
}

void* DlOpen::lookup(const char* name) const {
  dlerror();
  void* p = dlsym(handle_, name);
  const char* e = dlerror();
  if (!p || e)
    SLN_FAIL(Library, spec_.code, "the " << spec_.what << " library " << path_ << " lacks the symbol " << name << " ("
                                         << (e ? e : "null") << "): it was built from other sources than this addon; "
                                         << spec_.rebuild);
  return p;
}

}  // namespace sln::addon

// The C ABI of libselflabel_cuda.so (sln/cuda_api.h): the only exported
// symbols. Every function catches everything and reports through err / out;
// nothing throws across this boundary, exits or aborts.
#include "sln/cuda_api.h"

#include <cstdio>
#include <cstring>
#include <exception>
#include <new>
#include <sstream>
#include <string>

#include "core/sinkhorn.h"
#include "cuda/common.h"

#define SLN_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

void write_msg(char* dst, size_t len, const std::string& msg) {
  if (!dst || len == 0) return;
  const size_t n = msg.size() < len - 1 ? msg.size() : len - 1;
  std::memcpy(dst, msg.data(), n);
  dst[n] = '\0';
}

std::string current_error() {
  try {
    throw;
  } catch (const sln::Error& e) {
    return e.code() + ": " + e.what();
  } catch (const std::bad_alloc&) {
    return "SLN_OUT_OF_MEMORY: out of host memory";
  } catch (const std::exception& e) {
    return std::string("SLN_INTERNAL: ") + e.what();
  } catch (...) {
    return "SLN_INTERNAL: unknown exception";
  }
}

std::string json_str(const std::string& s) {
  std::string o = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      o += '\\';
      o += static_cast<char>(c);
    } else if (c < 0x20) {
      char b[8];
      std::snprintf(b, sizeof b, "\\u%04x", c);
      o += b;
    } else {
      o += static_cast<char>(c);
    }
  }
  return o + "\"";
}

std::string cuda_err(const char* call, cudaError_t e) {
  std::ostringstream os;
  os << call << ": " << cudaGetErrorString(e) << " (" << static_cast<int>(e) << ")";
  return os.str();
}

sln::cuda::CudaBackend* as_cuda(sln::Backend* b) {
  auto* cb = dynamic_cast<sln::cuda::CudaBackend*>(b);
  if (!cb)
    SLN_FAIL(InvalidArgument, "SLN_INVALID_ARGUMENT",
             "cuda: the backend passed is " << (b ? b->name() : "null") << ", not one from sln_cuda_backend_create");
  return cb;
}

}  // namespace

SLN_EXPORT int sln_cuda_abi_version(void) { return SLN_CUDA_ABI_VERSION; }

// Order matters: the CUDA runtime first (no driver or no device is an error,
// not a crash); cuDNN only when a device exists and its sub-libraries are
// present, because an incomplete cuDNN aborts the process on its first call.
SLN_EXPORT int sln_cuda_probe(int device, char* out, size_t out_len) {
  std::string json;
  int rc = 1;
  try {
    const sln::cuda::CudnnLibCheck libs = sln::cuda::check_cudnn_sublibs();
    std::string libs_json = ",\"cudnnDir\":" + json_str(libs.dir) + ",\"cudnnMissing\":[";
    for (size_t i = 0; i < libs.missing.size(); i++) libs_json += (i ? "," : "") + json_str(libs.missing[i]);
    libs_json += "]";
    auto fail = [&](const std::string& msg) { json = "{\"ok\":false,\"error\":" + json_str(msg) + libs_json + "}"; };

    int driver = 0, runtime = 0, count = 0;
    cudaDriverGetVersion(&driver);  // 0 when no driver is installed
    cudaRuntimeGetVersion(&runtime);
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
      cudaGetLastError();
      fail(cuda_err("cudaGetDeviceCount", e) + (driver == 0 ? "; no NVIDIA driver was found" : ""));
    } else if (count == 0) {
      fail("cudaGetDeviceCount: no CUDA device");
    } else if (device < 0 || device >= count) {
      fail("device " + std::to_string(device) + " does not exist (" + std::to_string(count) + " CUDA device(s))");
    } else if (!libs.missing.empty()) {
      std::string m = "cuDNN is incomplete: ";
      for (size_t i = 0; i < libs.missing.size(); i++) m += (i ? ", " : "") + libs.missing[i];
      m += " not found" + (libs.dir.empty() ? std::string() : " beside " + libs.dir + "/libcudnn.so." + std::to_string(CUDNN_MAJOR));
      fail(m);
    } else if ((e = cudaSetDevice(device)) != cudaSuccess) {
      cudaGetLastError();
      fail(cuda_err("cudaSetDevice", e));
    } else {
      cudaDeviceProp p;
      size_t free_b = 0, total_b = 0;
      if ((e = cudaGetDeviceProperties(&p, device)) != cudaSuccess) {
        fail(cuda_err("cudaGetDeviceProperties", e));
      } else if ((e = cudaMemGetInfo(&free_b, &total_b)) != cudaSuccess) {
        cudaGetLastError();
        fail(cuda_err("cudaMemGetInfo", e));
      } else {
        cudnnHandle_t h = nullptr;
        cudnnStatus_t s = cudnnCreate(&h);
        if (s != CUDNN_STATUS_SUCCESS) {
          fail(std::string("cudnnCreate: ") + cudnnGetErrorString(s) + " (" + std::to_string(static_cast<int>(s)) + ")");
        } else {
          const size_t cudnn_v = cudnnGetVersion();
          cudnnDestroy(h);
          cublasHandle_t bh = nullptr;
          cublasStatus_t bs = cublasCreate(&bh);
          int cublas_v = 0;
          if (bs == CUBLAS_STATUS_SUCCESS) {
            cublasGetVersion(bh, &cublas_v);
            cublasDestroy(bh);
          }
          if (bs != CUBLAS_STATUS_SUCCESS) {
            fail(std::string("cublasCreate: ") + sln::cuda::cublas_status_name(bs));
          } else {
            std::ostringstream os;
            os << "{\"ok\":true,\"device\":" << json_str(p.name) << ",\"index\":" << device << ",\"cc\":\"" << p.major
               << "." << p.minor << "\",\"memoryBytes\":" << total_b << ",\"freeBytes\":" << free_b
               << ",\"driver\":" << driver << ",\"runtime\":" << runtime << ",\"cudnn\":" << cudnn_v
               << ",\"cublas\":" << cublas_v << ",\"devices\":" << count << libs_json << "}";
            json = os.str();
            rc = 0;
          }
        }
      }
    }
  } catch (...) {
    json = "{\"ok\":false,\"error\":" + json_str(current_error()) + "}";
    rc = 1;
  }
  if (out && out_len) {
    if (json.size() >= out_len) {  // truncated JSON would not parse: say so in a form that does
      json = "{\"ok\":false,\"error\":\"sln_cuda_probe: output buffer too small (" + std::to_string(json.size() + 1) +
             " bytes needed)\"}";
      rc = 1;
    }
    write_msg(out, out_len, json);
  }
  return rc;
}

SLN_EXPORT sln::Backend* sln_cuda_backend_create(int device, char* err, size_t err_len) {
  try {
    return new sln::cuda::CudaBackend(device);
  } catch (...) {
    write_msg(err, err_len, current_error());
    return nullptr;
  }
}

SLN_EXPORT void sln_cuda_backend_destroy(sln::Backend* backend) {
  try {
    delete backend;
  } catch (...) {
  }
}

SLN_EXPORT int sln_cuda_set_tf32(sln::Backend* backend, int enabled, char* err, size_t err_len) {
  try {
    as_cuda(backend)->set_tf32(enabled != 0);
    return 0;
  } catch (...) {
    write_msg(err, err_len, current_error());
    return 1;
  }
}

SLN_EXPORT int sln_cuda_sinkhorn(sln::Backend* backend, const float* z_device, int64_t n, int64_t k,
                                 const sln::sinkhorn::Options* opt, sln::sinkhorn::Result* out, char* err,
                                 size_t err_len) {
  try {
    SLN_CHECK_ARG(backend && z_device && opt && out, "sinkhorn (cuda): backend, z, options and result must not be null");
    *out = sln::cuda::sinkhorn_logits(as_cuda(backend)->stream(), z_device, n, k, *opt);
    return 0;
  } catch (...) {
    write_msg(err, err_len, current_error());
    return 1;
  }
}

SLN_EXPORT int sln_cuda_augment(sln::Backend* backend, const sln::AugmentBatchDesc* desc,
                                const sln::AugmentImage* images, const sln::AugmentParams* params, float* out_device,
                                char* err, size_t err_len) {
  try {
    SLN_CHECK_ARG(desc, "augment (cuda): desc must not be null");
    SLN_CHECK_ARG(desc->n == 0 || (images && params && out_device),
                  "augment (cuda): images, params and out must not be null for n = " << desc->n);
    sln::cuda::augment_batch(*as_cuda(backend), *desc, images, params, out_device);
    return 0;
  } catch (...) {
    write_msg(err, err_len, current_error());
    return 1;
  }
}

// augmentBatch(src, desc, out) -> Promise<Float32Array>: the batched augmentation
// of sln/augment.h, off the JS thread. resizeU8(...) -> Promise<Uint8Array> for
// the decode cache. syntheticImages(seed, count) -> Promise<{images, labels,
// classes}> for the built-in set. Everything is checked on the JS thread, so a
// bad argument throws synchronously and the worker cannot fail on it.
#include <cmath>
#include <memory>

#include "addon/augment_job.h"
#include "addon/args.h"
#include "addon/common.h"
#include "addon/cuda_loader.h"
#include "sln/augment.h"

namespace sln::addon {

namespace {

template <typename T>
T typed(Napi::Env env, Napi::Object o, const char* key, napi_typedarray_type type, const char* type_name,
        size_t expect, const char* fn) {
  Napi::Value v = o.Get(key);
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type)
    throw Napi::TypeError::New(env, std::string(fn) + ": desc." + key + " must be a " + type_name);
  T a = v.As<T>();
  if (a.ElementLength() != expect)
    throw Napi::RangeError::New(env, std::string(fn) + ": desc." + key + " has " +
                                         std::to_string(a.ElementLength()) + " elements, expected " +
                                         std::to_string(expect));
  return a;
}

void float_list(Napi::Env env, Napi::Object o, const char* key, int n, float* dst, const char* fn) {
  Napi::Value v = o.Get(key);
  if (!v.IsArray() && !v.IsTypedArray())
    throw Napi::TypeError::New(env, std::string(fn) + ": desc." + key + " must be an array of " +
                                        std::to_string(n) + " numbers");
  Napi::Object a = v.As<Napi::Object>();
  uint32_t len = a.Get("length").As<Napi::Number>().Uint32Value();
  if (static_cast<int>(len) != n)
    throw Napi::RangeError::New(env, std::string(fn) + ": desc." + key + " has " + std::to_string(len) +
                                         " values, expected " + std::to_string(n) + " (one per output channel)");
  for (int i = 0; i < n; i++) dst[i] = a.Get(static_cast<uint32_t>(i)).ToNumber().FloatValue();
}

// Checks and converts (src, desc, out) on the JS thread.
std::shared_ptr<AugmentJob> parse_job(const Napi::CallbackInfo& info, const char* fn) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[2].IsTypedArray() ||
      info[2].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw Napi::TypeError::New(env, std::string(fn) + "(src: Uint8Array, desc: object, out: Float32Array): out must be a Float32Array");
  auto job = parse_augment_job(env, info[0], info[1], fn);
  Napi::Float32Array out = info[2].As<Napi::Float32Array>();
  const size_t need = job->out_floats();
  if (out.ElementLength() != need)
    throw Napi::RangeError::New(env, std::string(fn) + ": out has " + std::to_string(out.ElementLength()) +
                                         " floats, expected n*outChannels*outHeight*outWidth = " + std::to_string(need));
  return job;
}

}  // namespace

std::shared_ptr<AugmentJob> parse_augment_job(Napi::Env env, Napi::Value srcv, Napi::Value dv, const char* fn) {
  const std::string f(fn);
  if (!srcv.IsTypedArray() || srcv.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    throw Napi::TypeError::New(env, f + ": src must be a Uint8Array (the batch's uint8 source pixels)");
  if (!dv.IsObject()) throw Napi::TypeError::New(env, f + ": desc must be an object (see NativeAugmentDesc)");
  Napi::Uint8Array src = srcv.As<Napi::Uint8Array>();
  Napi::Object d = dv.As<Napi::Object>();
  const std::string where = f + ": desc";
  auto job = std::make_shared<AugmentJob>();
  AugmentBatchDesc& desc = job->desc;
  desc.n = int_field(d, "n", where);
  desc.in_channels = int_field(d, "channels", where);
  std::string layout = d.Get("layout").IsString() ? d.Get("layout").As<Napi::String>().Utf8Value() : "";
  if (layout != "HWC" && layout != "CHW") throw Napi::TypeError::New(env, f + ": desc.layout must be 'HWC' or 'CHW'");
  desc.layout = layout == "HWC" ? PixelLayout::HWC : PixelLayout::CHW;
  desc.out_h = int_field(d, "outHeight", where);
  desc.out_w = int_field(d, "outWidth", where);
  desc.out_channels = int_field(d, "outChannels", where);
  desc.threads = int_field_or(d, "threads", where, 0);
  if (desc.n < 0) throw Napi::RangeError::New(env, f + ": desc.n must be >= 0");
  if (desc.out_channels != 1 && desc.out_channels != 3)
    throw Napi::RangeError::New(env, f + ": desc.outChannels must be 1 or 3");
  float_list(env, d, "mean", desc.out_channels, desc.mean, fn);
  float_list(env, d, "std", desc.out_channels, desc.std, fn);
  const size_t n = static_cast<size_t>(desc.n);
  auto offsets = typed<Napi::Float64Array>(env, d, "offsets", napi_float64_array, "Float64Array", n, fn);
  auto heights = typed<Napi::Int32Array>(env, d, "heights", napi_int32_array, "Int32Array", n, fn);
  auto widths = typed<Napi::Int32Array>(env, d, "widths", napi_int32_array, "Int32Array", n, fn);
  auto boxes = typed<Napi::Float64Array>(env, d, "boxes", napi_float64_array, "Float64Array", 4 * n, fn);
  auto flip = typed<Napi::Uint8Array>(env, d, "flip", napi_uint8_array, "Uint8Array", n, fn);
  auto gray = typed<Napi::Uint8Array>(env, d, "gray", napi_uint8_array, "Uint8Array", n, fn);
  auto factors = typed<Napi::Float32Array>(env, d, "factors", napi_float32_array, "Float32Array", 4 * n, fn);
  auto order = typed<Napi::Uint8Array>(env, d, "order", napi_uint8_array, "Uint8Array", 4 * n, fn);
  job->images.resize(n);
  job->params.resize(n);
  const size_t src_len = src.ElementLength();
  for (size_t i = 0; i < n; i++) {
    const double off = offsets[i];
    const int h = heights[i], w = widths[i];
    if (h < 1 || w < 1)
      throw Napi::RangeError::New(env, f + ": image " + std::to_string(i) + " has size " + std::to_string(h) + "x" +
                                           std::to_string(w));
    const double bytes = static_cast<double>(h) * w * desc.in_channels;
    if (!(off >= 0) || off != std::floor(off) || off + bytes > static_cast<double>(src_len))
      throw Napi::RangeError::New(env, f + ": image " + std::to_string(i) + " at offset " +
                                           (off == std::floor(off) && std::fabs(off) < 9e15
                                                ? std::to_string(static_cast<long long>(off))
                                                : std::to_string(off)) +
                                           " (" + std::to_string(h) + "x" + std::to_string(w) + "x" +
                                           std::to_string(desc.in_channels) + ") does not fit in src of " +
                                           std::to_string(src_len) + " bytes");
    job->images[i] = {src.Data() + static_cast<size_t>(off), h, w};
    AugmentParams& p = job->params[i];
    for (int k = 0; k < 4; k++) {
      p.box[k] = boxes[4 * i + k];
      p.factors[k] = factors[4 * i + k];
      p.order[k] = order[4 * i + k];
    }
    p.flip = flip[i] != 0;
    p.gray = gray[i] != 0;
  }
  validate_augment(desc, job->images.data(), job->params.data());
  return job;
}

namespace {

Napi::Value AugmentBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    auto job = parse_job(info, "augmentBatch");
    Napi::Uint8Array src = info[0].As<Napi::Uint8Array>();
    Napi::Float32Array out = info[2].As<Napi::Float32Array>();
    return PromiseWorker::Start(
        env, "sln.augmentBatch",
        [job, outp = out.Data()] { augment_batch(job->desc, job->images.data(), job->params.data(), outp); },
        [out_ref = std::make_shared<Napi::ObjectReference>(Napi::Persistent(out.As<Napi::Object>()))](
            Napi::Env) -> Napi::Value { return out_ref->Value(); },
        {src, out});
  });
}

// cudaAugmentBatch(src, desc, out): the same job through sln_cuda_augment on
// the CUDA backend (output in device memory, then downloaded into out). For
// the GPU tests and benchmarks; training uses the model's trainStepAugment,
// which writes into the model's input buffer without a download.
Napi::Value CudaAugmentBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const CudaLib& lib = cuda_lib_or_throw("cudaAugmentBatch");
    auto job = parse_job(info, "cudaAugmentBatch");
    Napi::Uint8Array src = info[0].As<Napi::Uint8Array>();
    Napi::Float32Array out = info[2].As<Napi::Float32Array>();
    auto fn = lib.augment;
    const size_t bytes = out.ElementLength() * sizeof(float);
    return PromiseWorker::Start(
        env, "sln.cudaAugmentBatch",
        [job, fn, bytes, outp = out.Data()] {
          Backend& be = cuda_backend();
          auto lk = lock_backend(be);
          Buffer dev(be, bytes);   // (n, out_channels, out_h, out_w) device
          char err[512] = {0};
          if (fn(&be, &job->desc, job->images.data(), job->params.data(), dev.f32(), err, sizeof err) != 0)
            SLN_FAIL(Internal, "SLN_CUDA", "cudaAugmentBatch: " << err);
          be.download(outp, dev.data(), bytes);
        },
        [out_ref = std::make_shared<Napi::ObjectReference>(Napi::Persistent(out.As<Napi::Object>()))](
            Napi::Env) -> Napi::Value { return out_ref->Value(); },
        {src, out});
  });
}

Napi::Value ResizeU8(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const char* usage =
        "resizeU8(src: Uint8Array, height, width, srcStride, channels, outHeight, outWidth) -> Promise<Uint8Array>";
    if (info.Length() < 7 || !info[0].IsTypedArray() ||
        info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
      throw Napi::TypeError::New(env, usage);
    int v[6];
    for (int k = 0; k < 6; k++) {
      if (!info[k + 1].IsNumber()) throw Napi::TypeError::New(env, usage);
      v[k] = info[k + 1].As<Napi::Number>().Int32Value();
    }
    const int h = v[0], w = v[1], stride = v[2], ch = v[3], oh = v[4], ow = v[5];
    if (h < 1 || w < 1 || oh < 1 || ow < 1 || ch < 1 || ch > 4 || stride < ch)
      throw Napi::RangeError::New(env, "resizeU8: bad sizes " + std::to_string(h) + "x" + std::to_string(w) + "x" +
                                           std::to_string(stride) + " -> " + std::to_string(oh) + "x" +
                                           std::to_string(ow) + "x" + std::to_string(ch));
    Napi::Uint8Array src = info[0].As<Napi::Uint8Array>();
    if (src.ElementLength() < static_cast<size_t>(h) * w * stride)
      throw Napi::RangeError::New(env, "resizeU8: src has " + std::to_string(src.ElementLength()) +
                                           " bytes, expected " + std::to_string(static_cast<size_t>(h) * w * stride));
    auto dst = std::make_shared<std::vector<uint8_t>>(static_cast<size_t>(oh) * ow * ch);
    const uint8_t* sp = src.Data();
    return PromiseWorker::Start(
        env, "sln.resizeU8", [=] { resize_u8(sp, h, w, stride, ch, dst->data(), oh, ow); },
        [dst](Napi::Env env) -> Napi::Value {
          Napi::Uint8Array a = Napi::Uint8Array::New(env, dst->size());
          std::copy(dst->begin(), dst->end(), a.Data());
          return a;
        },
        {src});
  });
}

Napi::Value SyntheticImages(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const char* usage = "syntheticImages(seed: number, count: number) -> Promise<{images, labels, classes}>";
    if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber()) throw Napi::TypeError::New(env, usage);
    const double seed = info[0].As<Napi::Number>().DoubleValue();
    const double count = info[1].As<Napi::Number>().DoubleValue();
    if (!(seed >= 0) || seed != std::floor(seed) || seed > 9007199254740991.0)
      throw Napi::RangeError::New(env, "syntheticImages: seed must be an integer in [0, 2^53)");
    if (!(count >= 0) || count != std::floor(count) || count > 10000000)
      throw Napi::RangeError::New(env, "syntheticImages: count must be an integer in [0, 1e7]");
    const int n = static_cast<int>(count);
    const size_t per = static_cast<size_t>(kSyntheticSize) * kSyntheticSize * 3;
    auto images = std::make_shared<std::vector<uint8_t>>(per * n);
    auto labels = std::make_shared<std::vector<int32_t>>(n);
    const uint64_t s = static_cast<uint64_t>(seed);
    return PromiseWorker::Start(
        env, "sln.syntheticImages", [=] { synthetic_images(s, n, images->data(), labels->data(), 0); },
        [=](Napi::Env env) -> Napi::Value {
          Napi::Object o = Napi::Object::New(env);
          Napi::Uint8Array im = Napi::Uint8Array::New(env, images->size());
          std::copy(images->begin(), images->end(), im.Data());
          Napi::Int32Array lb = Napi::Int32Array::New(env, labels->size());
          std::copy(labels->begin(), labels->end(), lb.Data());
          Napi::Array cls = Napi::Array::New(env, kSyntheticClasses);
          for (int k = 0; k < kSyntheticClasses; k++) cls.Set(k, Napi::String::New(env, kSyntheticClassNames[k]));
          o.Set("images", im);
          o.Set("labels", lb);
          o.Set("classes", cls);
          o.Set("size", Napi::Number::New(env, kSyntheticSize));
          return o;
        });
  });
}

}  // namespace

static void init_augment(Napi::Env env, Napi::Object exports) {
  exports.Set("cudaAugmentBatch", Napi::Function::New(env, CudaAugmentBatch, "cudaAugmentBatch"));
  exports.Set("augmentBatch", Napi::Function::New(env, AugmentBatch, "augmentBatch"));
  exports.Set("resizeU8", Napi::Function::New(env, ResizeU8, "resizeU8"));
  exports.Set("syntheticImages", Napi::Function::New(env, SyntheticImages, "syntheticImages"));
}

SLN_ADDON_INIT(init_augment);

}  // namespace sln::addon

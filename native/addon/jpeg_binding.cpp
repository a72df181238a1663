// JPEG decoding for the ImageFolder decode cache with libjpeg(-turbo), linked
// into the addon when the build found its headers and library
// (SLN_HAVE_LIBJPEG: binding.gyp asks scripts/has-libjpeg.js; without it the
// addon has no jpegDecode and lib/data/decoders.ts uses sharp or jimp).
//
// jpegDecode(src, shortSide, orientation, fullHeight, fullWidth, outHeight,
//            outWidth, out) -> Promise<string | null>
// decodes the JPEG in src straight to the cache's RGB bytes in out (outHeight x
// outWidth x 3, the size after the EXIF orientation): with libjpeg's scaled
// IDCT (1/2, 1/4 or 1/8) while at least 1.5x is left for the resize (the
// shorter side at least 1.5 x d x shortSide), then the native resize
// (sln/augment.h, the filter of the jimp path; of the exact box of image a
// scaled decode holds) when the decoded size is not the cache's, then the
// orientation (1-8, read from the header by the caller). No fresh memory per
// image: out is the caller's, the scratch is per thread and reused (a cache-size
// JPEG in orientation 1 is decoded straight into out). null when out holds the
// image; else the reason it was not decoded (a corrupt or truncated file, CMYK,
// a size other than the caller read from the header), and the caller leaves
// the file to another decoder. Bad arguments throw synchronously.
#include <cmath>
#include <csetjmp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "addon/common.h"
#include "sln/augment.h"

#ifdef SLN_HAVE_LIBJPEG
#include <jpeglib.h>
#include <jerror.h>
#endif

namespace sln::addon {

#ifdef SLN_HAVE_LIBJPEG
namespace {

struct JpegJob {
  const uint8_t* src;
  size_t src_len;
  int short_side, orientation, full_h, full_w, out_h, out_w;
  uint8_t* out;
};

struct ErrMgr {
  jpeg_error_mgr pub;   // first: libjpeg sees a jpeg_error_mgr*
  jmp_buf jump;
  bool truncated;
  char message[JMSG_LENGTH_MAX];
};

void on_error(j_common_ptr c) {
  ErrMgr* e = reinterpret_cast<ErrMgr*>(c->err);
  (*c->err->format_message)(c, e->message);
  longjmp(e->jump, 1);
}

// Warnings (level -1): a file that ends early is refused (libjpeg would fill
// the rest with grey; sharp's failOn "error" refuses it too); the others
// ("extraneous bytes before marker", ...) are passed, as libvips does.
void on_message(j_common_ptr c, int level) {
  ErrMgr* e = reinterpret_cast<ErrMgr*>(c->err);
  if (level < 0 && c->err->msg_code == JWRN_JPEG_EOF) e->truncated = true;
}

struct Scratch {
  std::vector<uint8_t> decoded, resized;
  std::vector<float> planes;
};
thread_local Scratch scratch;

// Everything that calls libjpeg, with its error longjmp'ing back here: no local
// with a destructor (the caller creates and destroys cinfo). Returns false with
// err->message set; else the decoded (stored orientation) size in *oh x *ow,
// the pixels in out (*direct) or in scratch.decoded.
bool run_libjpeg(jpeg_decompress_struct* cinfo, ErrMgr* err, const JpegJob& job, int* oh, int* ow, int* denom_out,
                 bool* direct) {
  if (setjmp(err->jump)) return false;
  jpeg_mem_src(cinfo, const_cast<unsigned char*>(job.src), static_cast<unsigned long>(job.src_len));
  jpeg_read_header(cinfo, TRUE);
  if (static_cast<int>(cinfo->image_height) != job.full_h || static_cast<int>(cinfo->image_width) != job.full_w) {
    std::snprintf(err->message, sizeof err->message, "libjpeg reads %ux%u, the header said %dx%d", cinfo->image_width,
                  cinfo->image_height, job.full_w, job.full_h);
    return false;
  }
  if (cinfo->jpeg_color_space != JCS_GRAYSCALE && cinfo->jpeg_color_space != JCS_YCbCr &&
      cinfo->jpeg_color_space != JCS_RGB) {
    std::snprintf(err->message, sizeof err->message, "colour space %d (CMYK or YCCK) is left to another decoder",
                  static_cast<int>(cinfo->jpeg_color_space));
    return false;
  }
  const int shorter = job.full_h < job.full_w ? job.full_h : job.full_w;
  int denom = 1;
  for (int d : {8, 4, 2})
    if (2 * shorter >= 3 * d * job.short_side) {
      denom = d;
      break;
    }
  *denom_out = denom;
  cinfo->scale_num = 1;
  cinfo->scale_denom = denom;
  cinfo->out_color_space = JCS_RGB;
  cinfo->dct_method = JDCT_ISLOW;
  jpeg_calc_output_dimensions(cinfo);
  *oh = static_cast<int>(cinfo->output_height);
  *ow = static_cast<int>(cinfo->output_width);
  const bool swap = job.orientation >= 5;
  const int th = swap ? job.out_w : job.out_h, tw = swap ? job.out_h : job.out_w;
  if (cinfo->output_components != 3 || th > *oh || tw > *ow) {
    std::snprintf(err->message, sizeof err->message, "libjpeg decodes %dx%dx%d, cannot make %dx%d", *ow, *oh,
                  cinfo->output_components, tw, th);
    return false;
  }
  *direct = job.orientation == 1 && th == *oh && tw == *ow;
  const size_t row = static_cast<size_t>(*ow) * 3;
  uint8_t* dst = job.out;
  if (!*direct) {
    scratch.decoded.resize(row * *oh);   // may throw bad_alloc: unwinds (the caller destroys cinfo)
    dst = scratch.decoded.data();
  }
  jpeg_start_decompress(cinfo);
  JSAMPROW rows[16];
  while (cinfo->output_scanline < cinfo->output_height) {
    const int y = static_cast<int>(cinfo->output_scanline);
    int k = static_cast<int>(cinfo->rec_outbuf_height);
    if (k > 16) k = 16;
    if (k > *oh - y) k = *oh - y;
    for (int i = 0; i < k; i++) rows[i] = dst + row * (y + i);
    if (jpeg_read_scanlines(cinfo, rows, static_cast<JDIMENSION>(k)) == 0) break;   // suspended: cannot happen in memory
  }
  if (!err->truncated) jpeg_finish_decompress(cinfo);
  if (err->truncated || cinfo->output_scanline < cinfo->output_height) {
    std::snprintf(err->message, sizeof err->message, "premature end of the JPEG data (a truncated file)");
    return false;
  }
  return true;
}

// src (h x w x 3, stored orientation) to dst in EXIF orientation o (1-8):
// dst is w x h for 5-8.
void orient(const uint8_t* src, int h, int w, int o, uint8_t* dst) {
  const bool swap = o >= 5;
  const int dh = swap ? w : h, dw = swap ? h : w;
  for (int y = 0; y < dh; y++) {
    uint8_t* d = dst + static_cast<size_t>(y) * dw * 3;
    for (int x = 0; x < dw; x++) {
      int sy, sx;
      switch (o) {
        case 2: sy = y, sx = w - 1 - x; break;
        case 3: sy = h - 1 - y, sx = w - 1 - x; break;
        case 4: sy = h - 1 - y, sx = x; break;
        case 5: sy = x, sx = y; break;
        case 6: sy = h - 1 - x, sx = y; break;
        case 7: sy = h - 1 - x, sx = w - 1 - y; break;
        case 8: sy = x, sx = w - 1 - y; break;
        default: sy = y, sx = x; break;
      }
      const uint8_t* s = src + (static_cast<size_t>(sy) * w + sx) * 3;
      d[3 * x] = s[0];
      d[3 * x + 1] = s[1];
      d[3 * x + 2] = s[2];
    }
  }
}

// src (h x w x 3), of which the box [0, bw) x [0, bh) is the image, to dst
// (oh x ow x 3) with the native resize's filter (sln/augment.h's resample, as
// resize_u8, one thread). A scaled decode is ceil(full / d) pixels for full / d
// of image: resizing all of it would stretch the image by up to d - 1 source
// pixels (1 px at the far edge of a 767 px photo; 3.5 levels mean difference
// from the full decode on a test pattern), so the box is the exact one.
void resize_box(const uint8_t* src, int h, int w, double bw, double bh, uint8_t* dst, int oh, int ow) {
  AugmentBatchDesc d;
  d.n = 1;
  d.in_channels = d.out_channels = 3;
  d.layout = PixelLayout::HWC;
  d.out_h = oh;
  d.out_w = ow;
  for (int c = 0; c < 3; c++) d.std[c] = 1.f / 255.f;   // out = pixel / 255 / std = the pixel value
  d.threads = 1;
  AugmentImage im{src, h, w};
  AugmentParams p;
  p.box[0] = 0;
  p.box[1] = 0;
  p.box[2] = bw;
  p.box[3] = bh;
  const size_t plane = static_cast<size_t>(oh) * ow;
  scratch.planes.resize(3 * plane);
  augment_batch(d, &im, &p, scratch.planes.data());
  const float* f = scratch.planes.data();
  for (size_t i = 0; i < plane; i++)
    for (int c = 0; c < 3; c++) {
      const float v = std::nearbyint(f[c * plane + i]);
      dst[3 * i + c] = static_cast<uint8_t>(v < 0.f ? 0.f : (v > 255.f ? 255.f : v));
    }
}

// A scratch buffer above this is given back after the image (a 100 MP file must not hold 300 MB per thread).
constexpr size_t kKeepScratch = size_t{64} << 20;

// The decode, off the JS thread: "" when out holds the image, else why not.
std::string decode_jpeg(const JpegJob& job) {
  jpeg_decompress_struct cinfo;
  ErrMgr err;
  cinfo.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = on_error;
  err.pub.emit_message = on_message;
  err.truncated = false;
  err.message[0] = 0;
  if (setjmp(err.jump)) return std::string("libjpeg: ") + err.message;   // jpeg_create_decompress failed
  jpeg_create_decompress(&cinfo);
  int oh = 0, ow = 0, denom = 1;
  bool direct = false, ok;
  try {
    ok = run_libjpeg(&cinfo, &err, job, &oh, &ow, &denom, &direct);
  } catch (...) {
    jpeg_destroy_decompress(&cinfo);
    throw;
  }
  jpeg_destroy_decompress(&cinfo);
  if (!ok) return std::string("libjpeg: ") + err.message;
  if (!direct) {
    const bool swap = job.orientation >= 5;
    const int th = swap ? job.out_w : job.out_h, tw = swap ? job.out_h : job.out_w;
    const int fh = job.full_h, fw = job.full_w;   // stored orientation, as libjpeg reads them
    const uint8_t* px = scratch.decoded.data();
    if (th != oh || tw != ow) {
      uint8_t* dst = job.out;
      if (job.orientation != 1) {
        scratch.resized.resize(static_cast<size_t>(th) * tw * 3);
        dst = scratch.resized.data();
      }
      if (denom == 1)
        resize_u8(px, oh, ow, 3, 3, dst, th, tw);
      else
        resize_box(px, oh, ow, static_cast<double>(fw) / denom, static_cast<double>(fh) / denom, dst, th, tw);
      px = dst;
    }
    if (job.orientation != 1) orient(px, th, tw, job.orientation, job.out);
  }
  for (std::vector<uint8_t>* v : {&scratch.decoded, &scratch.resized})
    if (v->capacity() > kKeepScratch) std::vector<uint8_t>().swap(*v);
  return "";
}

Napi::Value JpegDecode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const char* usage =
        "jpegDecode(src: Uint8Array, shortSide, orientation, fullHeight, fullWidth, outHeight, outWidth, out: "
        "Uint8Array) -> Promise<string | null>";
    auto u8 = [&](int k) {
      return info[k].IsTypedArray() && info[k].As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array;
    };
    if (info.Length() < 8 || !u8(0) || !u8(7)) throw Napi::TypeError::New(env, usage);
    int v[6];
    for (int k = 0; k < 6; k++) {
      if (!info[k + 1].IsNumber()) throw Napi::TypeError::New(env, usage);
      v[k] = info[k + 1].As<Napi::Number>().Int32Value();
    }
    Napi::Uint8Array src = info[0].As<Napi::Uint8Array>(), out = info[7].As<Napi::Uint8Array>();
    JpegJob job{src.Data(), src.ElementLength(), v[0], v[1], v[2], v[3], v[4], v[5], out.Data()};
    const bool swap = job.orientation >= 5;
    const int fh = swap ? job.full_w : job.full_h, fw = swap ? job.full_h : job.full_w;
    if (job.short_side < 1 || job.orientation < 1 || job.orientation > 8 || job.full_h < 1 || job.full_w < 1 ||
        job.out_h < 1 || job.out_w < 1 || job.out_h > fh || job.out_w > fw)
      throw Napi::RangeError::New(env, std::string("jpegDecode: bad sizes: ") + std::to_string(job.full_w) + "x" +
                                           std::to_string(job.full_h) + " to " + std::to_string(job.out_w) + "x" +
                                           std::to_string(job.out_h) + ", shortSide " + std::to_string(job.short_side) +
                                           ", orientation " + std::to_string(job.orientation));
    const size_t need = static_cast<size_t>(job.out_h) * job.out_w * 3;
    if (out.ElementLength() < need)
      throw Napi::RangeError::New(env, "jpegDecode: out has " + std::to_string(out.ElementLength()) +
                                           " bytes, the image needs " + std::to_string(need));
    auto why = std::make_shared<std::string>();
    return PromiseWorker::Start(
        env, "sln.jpegDecode", [=] { *why = decode_jpeg(job); },
        [why](Napi::Env env) -> Napi::Value {
          return why->empty() ? env.Null() : Napi::String::New(env, *why).As<Napi::Value>();
        },
        {src, out});
  });
}

void InitJpeg(Napi::Env env, Napi::Object exports) {
  exports.Set("jpegDecode", Napi::Function::New(env, JpegDecode, "jpegDecode"));
#ifdef LIBJPEG_TURBO_VERSION_NUMBER
  exports.Set("jpegLibrary", Napi::String::New(env, "libjpeg-turbo " + std::to_string(LIBJPEG_TURBO_VERSION_NUMBER)));
#else
  exports.Set("jpegLibrary", Napi::String::New(env, "libjpeg " + std::to_string(JPEG_LIB_VERSION)));
#endif
}
SLN_ADDON_INIT(InitJpeg);

}  // namespace
#endif  // SLN_HAVE_LIBJPEG

}  // namespace sln::addon

// Batched image augmentation: one call turns a batch of uint8 source images and
// per-image parameters (sampled in TypeScript from a seeded PRNG) into an NCHW
// float32 batch. The parameters are the *result* of torchvision's random draws,
// so this code has no randomness of its own.
//
// Per image, in this order (torchvision's order for the reference's augs=3:
// RandomResizedCrop, RandomGrayscale, ColorJitter, RandomHorizontalFlip,
// ToTensor, Normalize):
//   1. resample: the source region box = (x0, y0, x1, y1) (float pixel
//      coordinates, pixel i covers [i, i+1)) is resized to (out_h, out_w) with
//      PIL's separable bilinear filter, exactly Image.resize(size, BILINEAR,
//      box=box): output pixel xx samples at centre x0 + (xx + 0.5) * scale,
//      scale = (x1 - x0) / out_w; triangle filter of support max(scale, 1)
//      (antialiased when shrinking, plain bilinear when enlarging); weights
//      normalised to sum 1; taps outside the image are dropped (edge clamp).
//      Taps may read pixels just outside the box but inside the image, as PIL's
//      box resize does. Intermediates are float (PIL rounds to uint8 between
//      the passes; we do not), values divided by 255 into [0, 1].
//      Resize(s) + CenterCrop(c) and Resize(s) + RandomResizedCrop(c) become one
//      resample with the crop box mapped back to source coordinates.
//   2. 1 -> 3 channels (out_channels 3 from a 1-channel source): replicate.
//   3. grayscale (3 channels): L = 0.299 R + 0.587 G + 0.114 B (PIL's
//      convert("L") weights) written to all three channels.
//   4. colour jitter, the four adjustments in the per-image order
//      (0 brightness, 1 contrast, 2 saturation, 3 hue), torchvision's tensor
//      formulas, each clamped to [0, 1]:
//        brightness b: x = b x
//        contrast   c: x = c x + (1 - c) mean(L)   (mean over the whole image)
//        saturation s: x = s x + (1 - s) L         (3 channels only)
//        hue        h: RGB -> HSV, H = (H + h) mod 1, HSV -> RGB (3 channels only)
//      Factors 1, 1, 1, 0 are the identity and are skipped.
//   5. horizontal flip.
//   6. normalise: (x - mean[c]) / std[c].
#pragma once
#include <cstddef>
#include <cstdint>

namespace sln {

enum class PixelLayout : int { HWC = 0, CHW = 1 };

struct AugmentImage {
  const uint8_t* data;  // (H, W, C) or (C, H, W), contiguous
  int height, width;
};

struct AugmentParams {
  double box[4];        // x0, y0, x1, y1 in source pixel coordinates; 0 <= x0 < x1 <= W
  bool flip = false;
  bool gray = false;
  float factors[4] = {1.f, 1.f, 1.f, 0.f};  // brightness, contrast, saturation, hue
  uint8_t order[4] = {0, 1, 2, 3};           // a permutation of 0..3
};

struct AugmentBatchDesc {
  int n = 0;
  int in_channels = 3;  // 1 or 3
  PixelLayout layout = PixelLayout::HWC;
  int out_h = 0, out_w = 0;
  int out_channels = 3;  // in_channels, or 3 from a 1-channel source
  float mean[3] = {0.f, 0.f, 0.f};
  float std[3] = {1.f, 1.f, 1.f};
  int threads = 0;  // OpenMP threads; 0 = the CPU backend's setting
};

// Throws sln::Error (SLN_INVALID_ARGUMENT) on bad descriptors or parameters;
// checks everything before touching out.
void validate_augment(const AugmentBatchDesc& d, const AugmentImage* images, const AugmentParams* params);

// out: (n, out_channels, out_h, out_w) float32.
void augment_batch(const AugmentBatchDesc& d, const AugmentImage* images, const AugmentParams* params,
                   float* out);

// Resize one image with the same filter, result rounded to uint8 (the decode
// cache). src has src_stride bytes per pixel (4 for RGBA), of which the first
// channels are kept. dst: (out_h, out_w, channels).
void resize_u8(const uint8_t* src, int h, int w, int src_stride, int channels, uint8_t* dst, int out_h,
               int out_w);

// The built-in synthetic set: 10 classes of shapes on textured backgrounds,
// (count, 32, 32, 3) uint8 HWC. Image i has label i % 10 and depends only on
// (seed, i), so any thread count gives the same bytes.
constexpr int kSyntheticSize = 32;
constexpr int kSyntheticClasses = 10;
extern const char* const kSyntheticClassNames[kSyntheticClasses];
void synthetic_images(uint64_t seed, int count, uint8_t* images, int32_t* labels, int threads);

}  // namespace sln

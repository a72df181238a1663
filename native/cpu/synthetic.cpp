// The built-in synthetic labelled set (sln/augment.h): 10 shape classes, each
// drawn at a random position, size and small rotation, in a random bright
// colour, on a dark tinted gradient with a weak sinusoidal texture, plus pixel noise. The
// class is in the shape only: colours, texture and placement are shared by all
// classes, so a network has to look at the shape to cluster it.
#include <cmath>
#include <cstdint>

#include "core/splitmix.h"
#include "cpu/cpu.h"
#include "sln/augment.h"
#include "sln/errors.h"

namespace sln {

const char* const kSyntheticClassNames[kSyntheticClasses] = {
    "disk", "ring", "square", "frame", "triangle", "plus", "cross", "hbars", "vbars", "checker"};

namespace {

// splitmix64: a per-image stream from (seed, index), independent of threads.
struct Rng : SplitMix64 {
  using SplitMix64::uniform;
  double uniform(double a, double b) { return a + (b - a) * uniform(); }
  // approximately normal noise, cheap: the sum of four 16-bit uniforms
  // (Irwin-Hall, n = 4), centred and scaled to unit variance
  double noise() {
    const uint64_t z = next();
    const double sum = static_cast<double>(z & 0xFFFF) + ((z >> 16) & 0xFFFF) + ((z >> 32) & 0xFFFF) + (z >> 48);
    return (sum / 65536.0 - 2.0) * 1.7320508075688772;
  }
};

// Shape membership in local coordinates (u right, v down), extent about [-1, 1].
bool inside(int cls, double u, double v) {
  const double au = std::fabs(u), av = std::fabs(v);
  switch (cls) {
    case 0: return u * u + v * v <= 1.0;
    case 1: { double r = std::sqrt(u * u + v * v); return r <= 1.0 && r >= 0.55; }
    case 2: return au <= 0.8 && av <= 0.8;
    case 3: return au <= 0.85 && av <= 0.85 && !(au <= 0.45 && av <= 0.45);
    case 4: {  // apex up: (0, -0.9), (-0.95, 0.8), (0.95, 0.8)
      if (v > 0.8 || v < -0.9) return false;
      double half = 0.95 * (v + 0.9) / 1.7;
      return au <= half;
    }
    case 5: return (au <= 0.3 && av <= 0.95) || (av <= 0.3 && au <= 0.95);
    case 6: {
      const double a = (u + v) * 0.7071067811865476, b = (u - v) * 0.7071067811865476;
      return (std::fabs(a) <= 0.25 && std::fabs(b) <= 1.0) || (std::fabs(b) <= 0.25 && std::fabs(a) <= 1.0);
    }
    case 7: return au <= 0.9 && av <= 0.9 && (static_cast<int>(std::floor((v + 0.9) / 0.36)) % 2 == 0);
    case 8: return au <= 0.9 && av <= 0.9 && (static_cast<int>(std::floor((u + 0.9) / 0.36)) % 2 == 0);
    default: {
      if (au > 0.9 || av > 0.9) return false;
      int a = static_cast<int>(std::floor((u + 0.9) / 0.45)), b = static_cast<int>(std::floor((v + 0.9) / 0.45));
      return (a + b) % 2 == 0;
    }
  }
}


void draw(uint64_t seed, int index, uint8_t* img, int32_t* label) {
  const int S = kSyntheticSize;
  Rng rng{seed ^ (0xD1B54A32D192ED03ull * static_cast<uint64_t>(index + 1))};
  rng.next();
  const int cls = index % kSyntheticClasses;
  *label = cls;
  // v2: a dark, slightly tinted background with a weak gradient and a bright
  // shape of random colour. Colour and brightness vary per image, never per
  // class, but less than in v1 (fully random colours), where the colours
  // dominated what an unsupervised network picked up: the shape must be the
  // strongest signal that is left after colour jitter.
  double bg0[3], bg1[3], fg[3];
  const double base = rng.uniform(0.05, 0.30);
  for (int c = 0; c < 3; c++) {
    bg0[c] = base + rng.uniform(-0.05, 0.05);
    bg1[c] = bg0[c] + rng.uniform(-0.08, 0.08);
    fg[c] = rng.uniform(0.55, 1.0);
  }
  const double gang = rng.uniform(0, 6.283185307179586);
  const double gx = std::cos(gang), gy = std::sin(gang);
  const double tfreq = rng.uniform(0.3, 1.2), tang = rng.uniform(0, 3.141592653589793), tph = rng.uniform(0, 6.3);
  const double tamp = rng.uniform(0.0, 0.06);
  const double radius = rng.uniform(7.0, 12.0);
  const double cx = 16.0 + rng.uniform(-5.0, 5.0), cy = 16.0 + rng.uniform(-5.0, 5.0);
  const double rot = rng.uniform(-0.35, 0.35);  // about +-20 degrees
  const double cr = std::cos(rot), sr = std::sin(rot);
  const double noise = rng.uniform(0.02, 0.06);
  const double tcos = std::cos(tang), tsin = std::sin(tang);
  for (int y = 0; y < S; y++) {
    for (int x = 0; x < S; x++) {
      // coverage: the pixel's centre and corners; 4x4 supersampling only where they disagree (edges)
      auto in_at = [&](double fx, double fy) {
        const double px = x + fx - cx, py = y + fy - cy;
        return inside(cls, (cr * px + sr * py) / radius, (-sr * px + cr * py) / radius);
      };
      const int probe = in_at(0.5, 0.5) + in_at(0.0, 0.0) + in_at(1.0, 0.0) + in_at(0.0, 1.0) + in_at(1.0, 1.0);
      int hits = probe == 5 ? 16 : 0;
      if (probe != 0 && probe != 5) {
        for (int sy = 0; sy < 4; sy++)
          for (int sx = 0; sx < 4; sx++) hits += in_at((sx + 0.5) / 4, (sy + 0.5) / 4);
      }
      const double a = hits / 16.0;
      const double t = 0.5 + 0.5 * ((x - 15.5) * gx + (y - 15.5) * gy) / 22.0;
      const double tex = tamp * std::sin(tfreq * (x * tcos + y * tsin) + tph);
      for (int c = 0; c < 3; c++) {
        const double b = bg0[c] * (1 - t) + bg1[c] * t + tex;
        double val = b * (1 - a) + fg[c] * a + noise * rng.noise();
        val = val < 0 ? 0 : (val > 1 ? 1 : val);
        img[(y * S + x) * 3 + c] = static_cast<uint8_t>(std::lround(val * 255.0));
      }
    }
  }
}

}  // namespace

void synthetic_images(uint64_t seed, int count, uint8_t* images, int32_t* labels, int threads) {
  SLN_CHECK_ARG(count >= 0, "synthetic: count must be >= 0, got " << count);
  const int nt = threads > 0 ? threads : cpu::threads();
  const size_t per = static_cast<size_t>(kSyntheticSize) * kSyntheticSize * 3;
#pragma omp parallel for schedule(dynamic, 16) num_threads(nt)
  for (int i = 0; i < count; i++) draw(seed, i, images + per * i, labels + i);
}

}  // namespace sln

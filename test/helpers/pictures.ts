// Seeded test pictures for the decoder tests (jimp images: encode them as
// JPEG or PNG with getBuffer).
import { Jimp } from "jimp";
import { Prng } from "../../lib/prng";

/**
 * A w x h RGB picture, opaque. Noisy (the default): gradients plus seeded noise,
 * detail that a shifted row or a wrong orientation would show, and flat parts
 * for JPEG to code. Smooth: a photo's scale of detail.
 */
export function picture(w: number, h: number, seed: number, smooth = false): InstanceType<typeof Jimp> {
  const img = new Jimp({ width: w, height: h, color: 0x000000ff });
  const rng = new Prng(seed);
  const d = img.bitmap.data;
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const i = 4 * (y * w + x);
      if (smooth) {
        d[i] = Math.round(127 + 120 * Math.sin(x / 9) * Math.cos(y / 13));
        d[i + 1] = Math.round((255 * y) / h);
        d[i + 2] = Math.round(127 + 100 * Math.sin((x + y) / 9.5));
      } else {
        d[i] = (x * 5 + Math.floor(rng.random() * 30)) & 255;
        d[i + 1] = (y * 3) & 255;
        d[i + 2] = Math.floor(rng.random() * 256);
      }
    }
  return img;
}

// Byte-level mutations, seeded: bit flips, interesting bytes and integers
// (little and big endian, 2/4/8 bytes), truncation, cut ranges, duplicated
// ranges, inserted random bytes. 1 to 4 mutations per input.
import { Prng } from "../../lib/prng";

const INTERESTING32 = [0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff, 0x40000000, 1000, 3072, 3073];

export function mutate(seed: Buffer, rng: Prng): Buffer {
  let b = Buffer.from(seed);
  const r = (n: number) => (n <= 0 ? 0 : rng.nextU32() % n);
  for (let m = 1 + r(4); m > 0; m--) {
    const kind = r(10);
    if (b.length === 0) {
      b = Buffer.from([r(256)]);
      continue;
    }
    const at = r(b.length);
    switch (kind) {
      case 0:
      case 1:
        b[at] ^= 1 << r(8);
        break;
      case 2:
        b[at] = [0, 0xff, 0x7f, 0x80, 1][r(5)];
        break;
      case 3: {
        const v = INTERESTING32[r(INTERESTING32.length)];
        const w = [1, 2, 4][r(3)];
        if (at + w <= b.length) {
          if (w === 1) b[at] = v & 0xff;
          else if (w === 2) r(2) ? b.writeUInt16LE(v & 0xffff, at) : b.writeUInt16BE(v & 0xffff, at);
          else r(2) ? b.writeUInt32LE(v >>> 0, at) : b.writeUInt32BE(v >>> 0, at);
        }
        break;
      }
      case 4:
        if (at + 8 <= b.length) b.writeBigUInt64LE([0n, 1n, 2n ** 32n, 2n ** 53n, 2n ** 63n, 2n ** 64n - 1n][r(6)], at);
        break;
      case 5:
        b = b.subarray(0, at); // truncate
        break;
      case 6: {
        const len = 1 + r(Math.min(64, b.length - at));
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + len)]);
        break;
      }
      case 7: {
        const len = 1 + r(Math.min(256, b.length - at));
        const to = r(b.length);
        b = Buffer.concat([b.subarray(0, to), b.subarray(at, at + len), b.subarray(to)]);
        break;
      }
      case 8: {
        const ins = Buffer.alloc(1 + r(16));
        for (let i = 0; i < ins.length; i++) ins[i] = r(256);
        b = Buffer.concat([b.subarray(0, at), ins, b.subarray(at)]);
        break;
      }
      default:
        for (let i = 0, n = 1 + r(8); i < n && at + i < b.length; i++) b[at + i] = r(256);
    }
  }
  return b;
}

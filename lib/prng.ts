// Seeded PRNG: xoshiro128** (Blackman & Vigna), 32-bit words so every step is
// exact in JavaScript. The state is four uint32 words; state()/fromState()
// save and restore it for exact resume (checkpoints keep it as JSON).
//
// Independent streams are derived, not advanced: Prng.derive(seed, a, b, ...)
// hashes (seed, a, b, ...) with splitmix32 into a fresh state, so the loader's
// epoch-e shuffle and batch-b augmentation draws do not depend on how many
// batches were prefetched or where a run was resumed.

export interface PrngState {
  algorithm: "xoshiro128**";
  s: [number, number, number, number];
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** splitmix32 step: returns [next state, output]. */
function splitmix32(state: number): [number, number] {
  const s = (state + 0x9e3779b9) >>> 0;
  let z = s;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  return [s, (z ^ (z >>> 16)) >>> 0];
}

/** Split a non-negative integer below 2^53 (or any finite number, via its bits) into two uint32 words. */
function words(x: number): [number, number] {
  if (Number.isInteger(x) && x >= 0 && x <= Number.MAX_SAFE_INTEGER) {
    return [x >>> 0, Math.floor(x / 4294967296) >>> 0];
  }
  const f = new Float64Array([x]);
  const u = new Uint32Array(f.buffer);
  return [u[0], u[1]];
}

export class Prng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  /** Seed from a number (integers up to 2^53 are all distinct seeds). */
  constructor(seed: number = 0) {
    const st = Prng.hashState([seed]);
    [this.s0, this.s1, this.s2, this.s3] = st;
  }

  /** A stream determined by (seed, ...path), independent of every other path. */
  static derive(seed: number, ...path: number[]): Prng {
    const p = new Prng(0);
    [p.s0, p.s1, p.s2, p.s3] = Prng.hashState([seed, ...path]);
    return p;
  }

  static fromState(state: PrngState): Prng {
    const p = new Prng(0);
    p.setState(state);
    return p;
  }

  private static hashState(values: number[]): [number, number, number, number] {
    // fold every word of every value into a splitmix32 chain; then draw 4 words
    let h = 0x243f6a88;
    for (const v of values) {
      for (const w of words(v)) {
        let out: number;
        [h, out] = splitmix32((h ^ w) >>> 0);
        h = (h ^ out) >>> 0;
      }
    }
    const st: number[] = [];
    for (let i = 0; i < 4; i++) {
      let out: number;
      [h, out] = splitmix32(h);
      st.push(out);
    }
    if ((st[0] | st[1] | st[2] | st[3]) === 0) st[0] = 1; // the all-zero state is a fixed point
    return st as [number, number, number, number];
  }

  state(): PrngState {
    return { algorithm: "xoshiro128**", s: [this.s0, this.s1, this.s2, this.s3] };
  }

  setState(state: PrngState): void {
    if (!state || state.algorithm !== "xoshiro128**" || !Array.isArray(state.s) || state.s.length !== 4) {
      throw new TypeError("Prng.setState: expected { algorithm: 'xoshiro128**', s: [4 uint32] }");
    }
    for (const w of state.s) {
      if (!Number.isInteger(w) || w < 0 || w > 0xffffffff) throw new RangeError(`Prng.setState: word ${w} is not a uint32`);
    }
    if ((state.s[0] | state.s[1] | state.s[2] | state.s[3]) === 0) throw new RangeError("Prng.setState: the all-zero state is invalid");
    [this.s0, this.s1, this.s2, this.s3] = state.s;
  }

  clone(): Prng {
    return Prng.fromState(this.state());
  }

  /** Next uint32. */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5) >>> 0, 7), 9) >>> 0;
    const t = (this.s1 << 9) >>> 0;
    this.s2 = (this.s2 ^ this.s0) >>> 0;
    this.s3 = (this.s3 ^ this.s1) >>> 0;
    this.s1 = (this.s1 ^ this.s2) >>> 0;
    this.s0 = (this.s0 ^ this.s3) >>> 0;
    this.s2 = (this.s2 ^ t) >>> 0;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  random(): number {
    const a = this.nextU32() >>> 5; // 27 bits
    const b = this.nextU32() >>> 6; // 26 bits
    return (a * 67108864 + b) / 9007199254740992;
  }

  /** Uniform in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.random();
  }

  /** Uniform integer in [lo, hi) (torch.randint's half-open convention), unbiased. */
  int(lo: number, hi: number): number {
    const n = hi - lo;
    if (!Number.isInteger(n) || n <= 0 || n > 0x100000000) throw new RangeError(`Prng.int: bad range [${lo}, ${hi})`);
    if (n === 1) return lo;
    // rejection sampling on uint32 to avoid modulo bias
    const limit = Math.floor(0x100000000 / n) * n;
    for (;;) {
      const x = this.nextU32();
      if (x < limit) return lo + (x % n);
    }
  }

  /** true with probability p. */
  bernoulli(p: number): boolean {
    return this.random() < p;
  }

  /** A uniformly random permutation of 0..n-1 (Fisher-Yates). */
  permutation(n: number): Int32Array {
    const a = new Int32Array(n);
    for (let i = 0; i < n; i++) a[i] = i;
    for (let i = n - 1; i > 0; i--) {
      const j = this.int(0, i + 1);
      const t = a[i];
      a[i] = a[j];
      a[j] = t;
    }
    return a;
  }
}

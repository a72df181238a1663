// Cluster ids of a new labelling matched to a previous one: the permutation of
// the new ids that maximises the number of images keeping their id (Hungarian
// algorithm on the K x K overlap, O(K^3)), so a head trained on the previous
// labels keeps meaning the same clusters after a spectral label pass.

/** `next` relabelled so that its clusters take the ids of the previous clusters they overlap most (a one-to-one matching). */
export function matchLabels(prev: Int32Array, next: Int32Array, k: number): Int32Array {
  if (prev.length !== next.length) throw new RangeError(`matchLabels: ${prev.length} previous labels, ${next.length} new`);
  const overlap = new Float64Array(k * k); // [new][old]
  for (let i = 0; i < next.length; i++) overlap[next[i] * k + prev[i]]++;
  const perm = assignMax(overlap, k); // new id -> old id
  const out = new Int32Array(next.length);
  for (let i = 0; i < next.length; i++) out[i] = perm[next[i]];
  return out;
}

/** Hungarian algorithm: the permutation p (row -> column) maximising sum w[r][p[r]] of the k x k matrix w. */
export function assignMax(w: Float64Array, k: number): Int32Array {
  // minimise cost = -w with potentials u (rows), v (columns); 1-based as the classic formulation
  const INF = Infinity;
  const u = new Float64Array(k + 1),
    v = new Float64Array(k + 1),
    p = new Int32Array(k + 1), // column -> row
    way = new Int32Array(k + 1);
  for (let i = 1; i <= k; i++) {
    p[0] = i;
    let j0 = 0;
    const minv = new Float64Array(k + 1).fill(INF);
    const used = new Uint8Array(k + 1);
    do {
      used[j0] = 1;
      const i0 = p[j0];
      let delta = INF,
        j1 = 0;
      for (let j = 1; j <= k; j++) {
        if (used[j]) continue;
        const cur = -w[(i0 - 1) * k + (j - 1)] - u[i0] - v[j];
        if (cur < minv[j]) {
          minv[j] = cur;
          way[j] = j0;
        }
        if (minv[j] < delta) {
          delta = minv[j];
          j1 = j;
        }
      }
      for (let j = 0; j <= k; j++) {
        if (used[j]) {
          u[p[j]] += delta;
          v[j] -= delta;
        } else minv[j] -= delta;
      }
      j0 = j1;
    } while (p[j0] !== 0);
    do {
      const j1 = way[j0];
      p[j0] = p[j1];
      j0 = j1;
    } while (j0 !== 0);
  }
  const out = new Int32Array(k);
  for (let j = 1; j <= k; j++) out[p[j] - 1] = j - 1;
  return out;
}

// The CUDA probe's child process (see lib/cuda.ts): `node cuda_probe.js <library>`.
// Loads the addon and the library, calls sln_cuda_probe, and prints one line
//   SLN_CUDA_PROBE {"stage":"load"|"probe","error"?:...,"probe"?:{...}}
// If the library (or a cuDNN it pulls in) aborts, only this process dies; the
// parent reads the signal and reports it.
import { native } from "./binding";

function answer(o: object): void {
  process.stdout.write("SLN_CUDA_PROBE " + JSON.stringify(o) + "\n");
}

const library = process.argv[2];
if (!library) {
  answer({ stage: "load", error: "cuda_probe: no library path given" });
} else {
  let loaded = false;
  try {
    native().cudaLoad(library);
    loaded = true;
  } catch (e) {
    answer({ stage: "load", error: e instanceof Error ? e.message : String(e) });
  }
  if (loaded) {
    const raw = native().cudaProbe(0);
    let probe: unknown;
    try {
      probe = JSON.parse(raw);
    } catch {
      probe = { ok: false, error: `the library's probe returned no JSON: '${raw.slice(0, 200)}'` };
    }
    answer({ stage: "probe", probe });
  }
}

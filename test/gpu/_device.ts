// GPU suites (test/gpu/*.test.ts): every test starts with `if (!(await cudaOrSkip(t))) return;`.
// Without a usable CUDA backend the test is skipped with "skipped: no CUDA device"
// (the reason goes to the diagnostics); with SELFLABEL_TEST_DEVICE=cuda a missing
// device is a failure instead, so a lent GPU machine cannot pass by skipping.
// SELFLABEL_CUDA_LIB picks the library (test/cuda_loader.test.ts runs these suites
// against a fake "device" library to check the tests themselves without a GPU).
import type { TestContext } from "node:test";
import * as assert from "node:assert/strict";
import { loadCuda } from "../../lib/cuda";

export async function cudaOrSkip(t: TestContext): Promise<boolean> {
  const st = await loadCuda();
  if (st.available) {
    t.diagnostic(`CUDA: ${st.reason} (${st.library})`);
    return true;
  }
  if (process.env.SELFLABEL_TEST_DEVICE === "cuda") assert.fail(`SELFLABEL_TEST_DEVICE=cuda, but CUDA is unavailable: ${st.reason}`);
  t.diagnostic(st.reason);
  t.skip("skipped: no CUDA device");
  return false;
}

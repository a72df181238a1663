// Imported first by the CPU suites that create models or run the CLI: they test
// the CPU backend (bit-identical resume, PyTorch comparisons at CPU tolerances),
// so device "auto" must not pick a GPU on a machine that has one. Child
// processes inherit this. The GPU suites (test/gpu/) and the loader tests set
// SELFLABEL_CUDA_LIB themselves.
process.env.SELFLABEL_CUDA_LIB = "off";
export {};

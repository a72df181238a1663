// selflabel-native/internals: the building blocks under the public API (the
// typed native binding, augmentation parameters, the Sinkhorn reference, probe
// internals...) for tests, benchmarks and experiments. No stability promise:
// names here may change between minor versions. Users import "selflabel-native".
export * from "./index";
export { native, packageRoot } from "./binding";
export type { NativeInfo } from "./binding";
export { createModel, Model, DeviceUnavailableError } from "./model";
export type { ModelOptions, StepOptions, StepResult, ForwardOptions, Tensor, StateDict, TensorInfo, Arch, ArchSpec, Device, TrunkLayer, Tap, TapPool } from "./model";
export { cudaStatus, loadCuda, cudaLoaded, cudaLibraryCandidates, setCudaTf32, describeProbe, CUDA_LIBRARY_NAME } from "./cuda";
export type { CudaStatus, CudaProbe, CudaState } from "./cuda";
export { loadPth, loadWeights, readPth, saveWeights, PthError, PthTensor, PyDict, ALLOWED_GLOBALS } from "./pth";
export type { PthWeights } from "./pth";
export { nmi, ami, ari, clusteringScores, clusterAccuracy, expectedMutualInfo, linearSumAssignment } from "./metrics";
export type { Labels, ClusteringScores, ClusterAccuracy } from "./metrics";
export * from "./data";
export { Prng } from "./prng";
export type { PrngState } from "./prng";
export * from "./sinkhorn";
export { knnClassify, linearProbe } from "./eval/knn";
export type { KnnOptions, KnnResult, ProbeOptions, ProbeResult } from "./eval/knn";
export { openExperiment, loadModel } from "./eval/experiment";
export type { Experiment } from "./eval/experiment";
export { evaluate, formatReport, extractFeatures } from "./eval/evaluate";
export type { EvalReport, EvalOptions, HeadReport, Quality, ProbeRow } from "./eval/evaluate";
export { probeLayers, resolveProbeLayers, extractTaps, referenceRecipe, trainLayerProbe, PROBE_DIM_BUDGET } from "./eval/probe";
export type { ProbeTap, ProbeGeometry, ProbeLayer, ProbeRecipe, LayerProbeResult } from "./eval/probe";
export { writeClusterPages } from "./eval/clusters";

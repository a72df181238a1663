// Public API of selflabel-native. Each concern has its own module; this file
// only re-exports. Every heavy call returns a Promise and runs off the event loop.
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
export { kmeans } from "./kmeans";
export type { KmeansOptions, KmeansResult } from "./kmeans";
export { openExperiment, loadModel } from "./eval/experiment";
export type { Experiment } from "./eval/experiment";
export { evaluate, formatReport, extractFeatures } from "./eval/evaluate";
export type { EvalReport, EvalOptions, HeadReport, Quality, ProbeRow } from "./eval/evaluate";
export { probeLayers, resolveProbeLayers, extractTaps, referenceRecipe, trainLayerProbe, PROBE_DIM_BUDGET } from "./eval/probe";
export type { ProbeTap, ProbeLayer, ProbeRecipe, LayerProbeResult } from "./eval/probe";
export { writeClusterPages } from "./eval/clusters";

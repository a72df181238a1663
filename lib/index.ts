// Public API of selflabel-native: train a network by self-labelling, use the
// model, solve the label assignment, score clusterings, read data, evaluate a
// run. Every heavy call returns a Promise and runs off the event loop; every
// error the package throws on purpose has a stable `code` (SLN_..., ABORT_ERR).
// The building blocks underneath are in "selflabel-native/internals".

// training
export { train } from "./train/train";
export type { TrainOptions, TrainResult, TrainHooks, TrainHooks as TrainControl, HeadQuality } from "./train/train";
export type { TrainProgress, StartEvent, BatchEvent, LabelPassEvent, EpochEvent, EvalEvent } from "./train/progress";
export type { RunVersions } from "./train/run_info";

// models
export { createModel, Model } from "./model";
export type { ModelOptions, StepOptions, StepResult, ForwardOptions, Tensor, StateDict, TensorInfo, Arch, ArchSpec, Device } from "./model";
export { loadPth, loadWeights, saveWeights } from "./pth";
export type { PthWeights } from "./pth";
export { cudaStatus } from "./cuda";
export type { CudaStatus, CudaProbe } from "./cuda";

// the label assignment and clustering scores
export { sinkhorn, sinkhornFromFeatures } from "./sinkhorn";
export type { SinkhornOptions, SinkhornResult, SinkhornScaling, SinkhornDtype } from "./sinkhorn";
export { nmi, ami, ari, clusteringScores, clusterAccuracy } from "./metrics";
export type { Labels, ClusteringScores, ClusterAccuracy } from "./metrics";
export { kmeans, spectral } from "./kmeans";
export type { KmeansOptions, KmeansResult, SpectralOptions, SpectralResult } from "./kmeans";

// data
export { openDataset, loadIdx, loadCifar, loadSynthetic, loadImageFolder, Loader, FASHION_MNIST_CLASSES, CIFAR10_CLASSES } from "./data";
export type { Dataset, DataFormat, Split, OpenDatasetOptions, ImageFolderOptions, LoaderOptions, Batch, AugLevel } from "./data";

// evaluating a run
export { openExperiment, loadModel } from "./eval/experiment";
export type { Experiment } from "./eval/experiment";
export { evaluate, formatReport } from "./eval/evaluate";
export type { EvalReport, EvalOptions, HeadReport } from "./eval/evaluate";
export { knnClassify, linearProbe } from "./eval/knn";
export type { KnnOptions, KnnResult, ProbeOptions, ProbeResult } from "./eval/knn";
export { writeClusterPages } from "./eval/clusters";
export { writeReport } from "./eval/report";
export type { ReportOptions } from "./eval/report";

// errors: every one has `code` (stable) and `exitCode` (what the CLI exits with)
export { SelflabelError, UsageError, InputError, AbortError, AddonLoadError } from "./errors";
export { DataError, DataNotFoundError, UnknownFormatError, EmptyDatasetError, TruncatedFileError, BadFileError, DataUsageError } from "./data/errors";
export { CheckpointError } from "./train/checkpoint";
export { SafetensorsError, SafetensorsIoError, WriteError } from "./safetensors";
export { ExperimentLockedError } from "./train/lock";
export { PthError } from "./pth";
export { DeviceUnavailableError } from "./model";

// Data: sources, augmentation parameters, the prefetching loader.
export * from "./dataset";
export * from "./errors";
export { openDataset, detectFormat, parseSplit, cacheShortSide } from "./detect";
export type { OpenDatasetOptions } from "./detect";
export { loadIdx, parseIdx, findIdxFiles, FASHION_MNIST_CLASSES } from "./idx";
export { loadCifar, findCifarFiles, CIFAR10_CLASSES } from "./cifar";
export { loadSynthetic, SYNTHETIC_DEFAULT_COUNT } from "./synthetic";
export type { SyntheticOptions } from "./synthetic";
export { loadImageFolder, scanImageFolder, buildImageFolderCache, defaultCacheDir, cacheKey, IMAGE_EXTENSIONS, FileDataset } from "./imagefolder";
export type { ImageFolderOptions, ImageFolderResult, ImageFolderScan } from "./imagefolder";
export * from "./augment";
export { Loader } from "./loader";
export type { LoaderOptions, Batch, SourceBatchJob } from "./loader";

// Public API of selflabel-native. Each concern has its own module; this file
// only re-exports. Every heavy call returns a Promise and runs off the event loop.
export { native, packageRoot } from "./binding";
export type { NativeInfo } from "./binding";
export * from "./sinkhorn";

// Reading PyTorch checkpoints (torch.save's zip format, PyTorch >= 1.6)
// without executing anything.
//
// A .pth is a zip archive: <prefix>/data.pkl (a pickle, protocol 2), one
// record <prefix>/data/<key> of raw little-endian bytes per storage, and
// <prefix>/byteorder in newer versions. The pickle is interpreted by a small
// stack machine that knows only the opcodes torch.save emits and builds plain
// values; its "globals" come from an allow-list (the tensor rebuild functions,
// the storage classes, collections.OrderedDict). Any other global (os.system,
// builtins.eval, numpy, ...) is refused with an error that names it, before
// anything else happens: there is no code that could run.
//
//   zip.ts      the zip container          pickle.ts  the pickle machine
//   torch.ts    torch.save's globals, storages and tensors
//   weights.ts  state_dicts, labels, safetensors weights, name fixes
//   worker.ts   loadWeights / loadPth off the main thread (load_worker.ts)
export { PthError } from "./error";
export { ZipEntry, zipEntries, zipRead } from "./zip";
export { PyDict, unpickle } from "./pickle";
export { TorchDType, PthTensor, ALLOWED_GLOBALS, readPth, decodePth } from "./torch";
export { PthWeights, loadPth, weightsFrom, WEIGHTS_FORMAT, loadWeights, saveWeights, renameReferenceResnet, checkAgainst } from "./weights";
export { loadWeightsAsync, loadPthAsync } from "./worker";

// npm run bench -- data [--fmnist DIR] [--images N] [--jpeg-size WxH] [--torch-images N] [--workers N] [--no-torch] [--no-fmnist] [--no-steps]
// Images/s of the data path, with torchvision on the same files in the same run
// when /usr/bin/python3 has torch and torchvision:
//   (a) Fashion-MNIST IDX, level 2 (Resize 32, RandomResizedCrop 28, flip) at 28 px
//   (b) an ImageFolder of generated JPEGs (320x256 unless --jpeg-size, e.g. 1024x768
//       for photo-sized files) at level 3 to 224: first epoch (decode into a fresh
//       cache + augment) with jimp, sharp and the addon's libjpeg decoder (the
//       default), later epochs (cache). The decode
//       also prints CPU ms per image (all threads of the process), which a busy
//       machine disturbs less than the wall-clock rate.
//   (c) unless --no-steps: where a first-epoch decode's time goes, measured in
//       this thread one image at a time over the same files (CPU ms per image):
//       the file read, each decoder's decode for the cache, writing the pixels
//       to a file and reading that file back, as buildImageFolderCache and
//       loadImageFolder do (and, for comparison, into a readFile buffer).
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { Jimp } from "jimp";
import { native } from "../lib/binding";
import { Loader, openDataset, loadImageFolder, Dataset } from "../lib/data";
import { readCache } from "../lib/data/imagefolder";
import { decodeForCache, decodeJpegNative, hasNativeJpeg, loadSharp, DecoderName, PixelBuffers } from "../lib/data/decoders";

function arg(args: string[], name: string, def: string): string {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : def;
}

async function epochRate(ds: Dataset, size: number, level: 0 | 1 | 2 | 3, batchSize: number, epoch: number, limit?: number): Promise<number> {
  const loader = new Loader(ds, { batchSize, size, level, seed: 1, prefetch: 2 });
  const t0 = process.hrtime.bigint();
  let n = 0;
  for await (const b of loader.epoch(epoch)) {
    n += b.size;
    if (limit && n >= limit) break;
  }
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  return n / s;
}

async function makeJpegFolder(dir: string, count: number, W: number, H: number): Promise<void> {
  const marker = path.join(dir, `.complete-${count}`);
  if (fs.existsSync(marker)) return;
  fs.rmSync(dir, { recursive: true, force: true });
  const syn = await openDataset({ synthetic: { seed: 123, count } });
  const src = await syn.read(Int32Array.from({ length: count }, (_, i) => i));
  for (let i = 0; i < count; i++) {
    // the 32x32 synthetic image enlarged to H x W, plus a little texture so JPEG has work to do
    const rgb = await native().resizeU8(src.data.subarray(src.offsets[i], src.offsets[i] + 3072), 32, 32, 3, 3, H, W);
    const img = new Jimp({ width: W, height: H });
    const d = img.bitmap.data;
    for (let p = 0; p < H * W; p++) {
      const t = ((p * 2654435761) >>> 28) - 8;
      for (let c = 0; c < 3; c++) d[4 * p + c] = Math.max(0, Math.min(255, rgb[3 * p + c] + t));
      d[4 * p + 3] = 255;
    }
    const cls = syn.classes[syn.labels![i]];
    fs.mkdirSync(path.join(dir, "train", cls), { recursive: true });
    fs.writeFileSync(path.join(dir, "train", cls, `${String(i).padStart(5, "0")}.jpg`), await img.getBuffer("image/jpeg", { quality: 90 }));
  }
  fs.writeFileSync(marker, "");
}

const TORCH_SCRIPT = String.raw`
import sys, json, time, gzip, numpy as np
import torch
from torch.utils.data import Dataset, DataLoader
import torchvision
from torchvision import transforms
from PIL import Image
mode, path, n, workers = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
torch.manual_seed(0)
if mode == "fmnist":
    with gzip.open(path + "/train-images-idx3-ubyte.gz") as f:
        imgs = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)[:n]
    tf = transforms.Compose([transforms.Resize(32), transforms.RandomResizedCrop(28, scale=(0.2, 1.0)),
                             transforms.RandomHorizontalFlip(), transforms.ToTensor(), transforms.Normalize([0.5], [0.5])])
    class DS(Dataset):
        def __len__(self): return len(imgs)
        def __getitem__(self, i): return tf(Image.fromarray(imgs[i], mode="L")), i
    ds, bs = DS(), 256
else:
    tf = transforms.Compose([transforms.RandomResizedCrop(224), transforms.RandomGrayscale(p=0.2),
                             transforms.ColorJitter(0.4, 0.4, 0.4, 0.4), transforms.RandomHorizontalFlip(),
                             transforms.ToTensor(), transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    ds, bs = torchvision.datasets.ImageFolder(path + "/train", tf), 64
loader = DataLoader(ds, batch_size=bs, shuffle=True, num_workers=workers)
rates = []
for epoch in range(int(sys.argv[5])):
    t0, seen = time.time(), 0
    for x, _ in loader:
        seen += x.shape[0]
    rates.append(seen / (time.time() - t0))
print(json.dumps({"rates": rates, "torch": torch.__version__, "torchvision": torchvision.__version__}))
`;

function torchAvailable(): boolean {
  const r = spawnSync("/usr/bin/python3", ["-c", "import torch, torchvision, PIL"], { encoding: "utf8" });
  return r.status === 0;
}

function runTorch(mode: string, p: string, n: number, workers: number, epochs: number): { rates: number[]; torch: string; torchvision: string } | string {
  const script = path.join(os.tmpdir(), `sln-bench-torch-${process.pid}.py`);
  fs.writeFileSync(script, TORCH_SCRIPT);
  const r = spawnSync("/usr/bin/python3", [script, mode, p, String(n), String(workers), String(epochs)], {
    encoding: "utf8",
    timeout: 300_000,
    env: { ...process.env, OMP_NUM_THREADS: "1" },
  });
  fs.rmSync(script, { force: true });
  if (r.status !== 0) return `torchvision run failed: ${(r.stderr || r.error?.message || "").trim().split("\n").slice(-1)[0]}`;
  return JSON.parse(r.stdout.trim().split("\n").slice(-1)[0]);
}

export async function main(args: string[]): Promise<void> {
  const fmnistDir = arg(args, "--fmnist", "/usr/share/datasets/fashion-mnist");
  const nImages = Number(arg(args, "--images", "300"));
  const jpegSize = /^(\d+)x(\d+)$/.exec(arg(args, "--jpeg-size", "320x256"));
  if (!jpegSize) throw new Error("--jpeg-size must be WxH, e.g. 1024x768");
  const [jpegW, jpegH] = [Number(jpegSize[1]), Number(jpegSize[2])];
  const torchImages = Number(arg(args, "--torch-images", "20000"));
  const workers = Number(arg(args, "--workers", String(Math.min(4, os.cpus().length))));
  const withTorch = !args.includes("--no-torch") && torchAvailable();
  const info = native().info();
  console.log(`data bench: ${os.cpus().length} CPUs (${os.cpus()[0]?.model}), load ${os.loadavg()[0].toFixed(1)}, ${info.cpu}`);
  console.log(`torchvision comparison: ${withTorch ? `yes, DataLoader num_workers=${workers}` : "no (python3-torch/torchvision missing or --no-torch)"}`);

  // (a) Fashion-MNIST
  if (args.includes("--no-fmnist")) {
    console.log("\n(a) skipped: --no-fmnist");
  } else if (fs.existsSync(fmnistDir)) {
    const t0 = Date.now();
    const fm = await openDataset({ data: fmnistDir });
    console.log(`\n(a) ${fm.name} ${fm.count} images, load ${Date.now() - t0} ms; level 2 at 28 px, batch 256`);
    await epochRate(fm, 28, 2, 256, 99, 2560); // warm-up
    const r0 = await epochRate(fm, 28, 2, 256, 0);
    const r1 = await epochRate(fm, 28, 2, 256, 1);
    console.log(`  selflabel-native: epoch 0 ${r0.toFixed(0)} img/s, epoch 1 ${r1.toFixed(0)} img/s (${native().info().threads} OpenMP threads)`);
    if (withTorch) {
      const t = runTorch("fmnist", fmnistDir, torchImages, workers, 1);
      if (typeof t === "string") console.log(`  ${t}`);
      else console.log(`  torchvision ${t.torchvision} (first ${torchImages} images): ${t.rates[0].toFixed(0)} img/s -> ratio ${(r1 / t.rates[0]).toFixed(1)}x`);
    }
  } else {
    console.log(`\n(a) skipped: no Fashion-MNIST at ${fmnistDir} (--fmnist DIR)`);
  }

  // (b) ImageFolder of JPEGs
  const folder = path.join(os.tmpdir(), "selflabel-bench-data", jpegW === 320 && jpegH === 256 ? `jpeg-${nImages}` : `jpeg-${jpegW}x${jpegH}-${nImages}`);
  const tg = Date.now();
  await makeJpegFolder(folder, nImages, jpegW, jpegH);
  let fileBytes = 0;
  for (const c of fs.readdirSync(path.join(folder, "train"))) for (const f of fs.readdirSync(path.join(folder, "train", c))) fileBytes += fs.statSync(path.join(folder, "train", c, f)).size;
  console.log(`\n(b) ImageFolder: ${nImages} JPEGs ${jpegW}x${jpegH} (${(fileBytes / nImages / 1024).toFixed(0)} KB each) in ${folder} (ready in ${Date.now() - tg} ms); cached at shorter side 256, level 3 to 224, batch 64, ${workers} decode threads (jimp) or files at once (sharp)`);
  // first epoch (decode + cache + augment) with each decoder, jimp first as the baseline
  const firstEpochRate = async (decoder: DecoderName, dir: string) => {
    const prev = process.env.SELFLABEL_DECODER;
    process.env.SELFLABEL_DECODER = decoder;
    try {
      const t1 = process.hrtime.bigint();
      const cpu0 = process.cpuUsage();
      const first = await loadImageFolder(folder, { split: "train", shortSide: 256, cacheDir: dir, workers });
      const decodeS = Number(process.hrtime.bigint() - t1) / 1e9;
      const cpu = process.cpuUsage(cpu0);
      const cpuMs = (cpu.user + cpu.system) / 1e3 / nImages;
      const aug0 = await epochRate(first.dataset, 224, 3, 64, 0);
      await first.dataset.close();
      const rate = nImages / (decodeS + nImages / aug0);
      console.log(`  ${decoder.padEnd(5)} first epoch (decode + cache + augment): ${rate.toFixed(0)} img/s (decode ${(nImages / decodeS).toFixed(0)} img/s, ${cpuMs.toFixed(1)} CPU ms/image; augment ${aug0.toFixed(0)} img/s)`);
      return { rate, decode: nImages / decodeS, cpuMs };
    } finally {
      if (prev === undefined) delete process.env.SELFLABEL_DECODER;
      else process.env.SELFLABEL_DECODER = prev;
    }
  };
  const jimpDir = fs.mkdtempSync(path.join(os.tmpdir(), "sln-bench-cache-"));
  const sharpDir = fs.mkdtempSync(path.join(os.tmpdir(), "sln-bench-cache-"));
  const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), "sln-bench-cache-"));
  try {
    const base = await firstEpochRate("jimp", jimpDir);
    let firstEpoch = base.rate;
    let fastest = jimpDir;
    const ratio = (name: string, fast: { rate: number; decode: number; cpuMs: number }) =>
      console.log(`  ${name} / jimp: first epoch ${(fast.rate / base.rate).toFixed(1)}x, decode alone ${(fast.decode / base.decode).toFixed(1)}x (CPU time per image ${(base.cpuMs / fast.cpuMs).toFixed(1)}x)`);
    if (loadSharp()) {
      const fast = await firstEpochRate("sharp", sharpDir);
      [firstEpoch, fastest] = [fast.rate, sharpDir];
      ratio("sharp", fast);
    } else {
      console.log("  sharp: not installed (npm install sharp)");
    }
    if (hasNativeJpeg()) {
      // the default decoder: the addon's libjpeg for JPEGs (sharp or jimp for the rest)
      const fast = await firstEpochRate("libjpeg", cacheDir);
      [firstEpoch, fastest] = [fast.rate, cacheDir];
      ratio(`libjpeg (the addon's, ${native().jpegLibrary})`, fast);
    } else {
      console.log("  libjpeg: the addon was built without libjpeg (apt-get install libjpeg62-turbo-dev, rebuild)");
    }
    if (fastest !== cacheDir) fs.cpSync(fastest, cacheDir, { recursive: true });
    const t2 = process.hrtime.bigint();
    const again = await loadImageFolder(folder, { split: "train", shortSide: 256, cacheDir, workers });
    const reopenMs = Number(process.hrtime.bigint() - t2) / 1e6;
    const c1 = await epochRate(again.dataset, 224, 3, 64, 1);
    const c2 = await epochRate(again.dataset, 224, 3, 64, 2);
    console.log(`  selflabel-native cached epochs: ${c1.toFixed(0)}, ${c2.toFixed(0)} img/s (reopening the cache: ${reopenMs.toFixed(0)} ms)`);
    if (withTorch) {
      const t = runTorch("imagefolder", folder, nImages, workers, 2);
      if (typeof t === "string") console.log(`  ${t}`);
      else {
        const tv = Math.max(...t.rates);
        console.log(`  torchvision ${t.torchvision} (decodes every epoch): ${t.rates.map((r) => r.toFixed(0)).join(", ")} img/s -> first epoch ${(firstEpoch / t.rates[0]).toFixed(1)}x, cached ${(Math.max(c1, c2) / tv).toFixed(1)}x`);
      }
    }
  } finally {
    fs.rmSync(cacheDir, { recursive: true, force: true });
    fs.rmSync(sharpDir, { recursive: true, force: true });
    fs.rmSync(jimpDir, { recursive: true, force: true });
  }
  if (!args.includes("--no-steps")) await steps(folder);
}

/** (c): the parts of a first-epoch decode, one image at a time in this thread, CPU ms per image. */
async function steps(folder: string): Promise<void> {
  const files: string[] = [];
  for (const c of fs.readdirSync(path.join(folder, "train")).sort()) for (const f of fs.readdirSync(path.join(folder, "train", c)).sort()) files.push(path.join(folder, "train", c, f));
  const bufs = files.map((f) => fs.readFileSync(f));
  const cpuMs = async (fn: (i: number) => unknown): Promise<number> => {
    for (let i = 0; i < Math.min(10, files.length); i++) await fn(i); // warm-up
    const c0 = process.cpuUsage();
    for (let i = 0; i < files.length; i++) await fn(i);
    const c = process.cpuUsage(c0);
    return (c.user + c.system) / 1e3 / files.length;
  };
  console.log(`
(c) one image at a time in this thread, CPU ms per image (load ${os.loadavg()[0].toFixed(1)}):`);
  const read = await cpuMs((i) => fs.readFileSync(files[i]));
  const row: string[] = [`read ${read.toFixed(2)}`];
  const decoded: Uint8Array[] = [];
  for (const d of ["jimp", "sharp"] as const) {
    if (d === "sharp" && !loadSharp()) continue;
    const ms = await cpuMs(async (i) => {
      const r = await decodeForCache(bufs[i], d, 256);
      if (d === "sharp") decoded[i] = r.data;
    });
    row.push(`${d} decode ${ms.toFixed(2)}`);
  }
  if (hasNativeJpeg()) {
    // as the decode pool does: into a reused buffer, given back once written
    const buffers = new PixelBuffers();
    const ms = await cpuMs(async (i) => {
      const r = await decodeJpegNative(bufs[i], 256, buffers);
      if (r === null || typeof r === "string") throw new Error(`${files[i]}: the addon's decoder did not take it (${r})`);
      if (!decoded[i]) decoded[i] = r.data.slice();
      buffers.give(r.data);
    });
    row.push(`libjpeg decode ${ms.toFixed(2)}`);
  }
  if (decoded.length) {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sln-bench-steps-"));
    const file = path.join(tmp, "cache.u8");
    try {
      const fd = fs.openSync(file, "w");
      const write = await cpuMs((i) => fs.writeSync(fd, decoded[i], 0, decoded[i].length));
      fs.closeSync(fd);
      const bytes = fs.statSync(file).size;
      const c0 = process.cpuUsage();
      await fs.promises.readFile(file);
      const c = process.cpuUsage(c0);
      const back = (c.user + c.system) / 1e3 / files.length;
      // as loadImageFolder reads it: into allocPages memory (huge pages where the kernel gives them)
      const c2 = process.cpuUsage();
      await readCache(file, bytes);
      const c3 = process.cpuUsage(c2);
      const backPages = (c3.user + c3.system) / 1e3 / files.length;
      row.push(
        `cache write ${write.toFixed(2)}`,
        `cache read back ${backPages.toFixed(2)} (${(bytes / 1e6).toFixed(0)} MB, as loadImageFolder: allocPages; ${back.toFixed(2)} into a readFile buffer)`,
      );
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  }
  console.log(`  ${row.join(", ")}`);
}

// --precision resolved for a run's device: the training step's arithmetic
// (lib/model.ts ModelOptions.precision). bf16 is mixed precision on the CPU:
// bfloat16 convolutions, float32 accumulation and master weights.
import { native } from "../binding";
import { UsageError } from "../errors";

export function trainPrecision(
  asked: "f32" | "bf16" | "auto",
  device: "cpu" | "cuda",
): { precision: "f32" | "bf16"; why: string } {
  if (asked === "f32") return { precision: "f32", why: "--precision f32" };
  const info = native().info();
  // oneDNN's bfloat16 convolutions need AVX-512 (native BF16 instructions, or
  // emulated on plain AVX-512 at a cost); without it primitive creation fails
  const blocker =
    device !== "cpu" ? "mixed-precision training is CPU-only" : !info.cpu.includes("avx512") ? `oneDNN's bfloat16 convolutions need AVX-512 (this CPU: ${info.cpu})` : "";
  if (asked === "bf16") {
    if (blocker) throw new UsageError(`--precision bf16: not available here: ${blocker}; use --precision f32 or auto`);
    return { precision: "bf16", why: info.bf16 ? "--precision bf16" : "--precision bf16 (emulated: this CPU has no AVX512-BF16/AMX, slower than f32)" };
  }
  if (blocker) return { precision: "f32", why: `auto: ${blocker}` };
  return info.bf16 ? { precision: "bf16", why: "auto: the CPU has AVX512-BF16/AMX" } : { precision: "f32", why: "auto: no AVX512-BF16/AMX on this CPU" };
}

// --precision and --label-precision resolved for a run: f32, or bf16 where
// nothing blocks it (explicit bf16 with a blocker is a usage error; auto falls
// back to f32 with the reason, and picks bf16 only where the CPU computes it
// natively). --precision is the training step's arithmetic (lib/model.ts
// ModelOptions.precision: bfloat16 convolutions, float32 accumulation and
// master weights); --label-precision the label pass's forward (label_pass.ts).
import { native } from "../binding";
import { UsageError } from "../errors";

export type Precision = { precision: "f32" | "bf16"; why: string };

/** `flag` names the option in messages; `blocker` is why bf16 cannot run here ("" when it can). */
export function resolvePrecision(flag: string, asked: "f32" | "bf16" | "auto", blocker: string): Precision {
  if (asked === "f32") return { precision: "f32", why: `${flag} f32` };
  const bf16 = native().info().bf16;
  if (asked === "bf16") {
    if (blocker) throw new UsageError(`${flag} bf16: not available here: ${blocker}; use ${flag} f32 or auto`);
    return { precision: "bf16", why: bf16 ? `${flag} bf16` : `${flag} bf16 (emulated: this CPU has no AVX512-BF16/AMX)` };
  }
  if (blocker) return { precision: "f32", why: `auto: ${blocker}` };
  return bf16 ? { precision: "bf16", why: "auto: the CPU has AVX512-BF16/AMX" } : { precision: "f32", why: "auto: no AVX512-BF16/AMX on this CPU" };
}

/** --precision: CPU only, and oneDNN's bfloat16 convolutions need AVX-512 (native BF16 instructions, or emulated on plain AVX-512). */
export function trainPrecision(asked: "f32" | "bf16" | "auto", device: "cpu" | "cuda"): Precision {
  const cpu = native().info().cpu;
  const blocker = device !== "cpu" ? "mixed-precision training is CPU-only" : !cpu.includes("avx512") ? `oneDNN's bfloat16 convolutions need AVX-512 (this CPU: ${cpu})` : "";
  return resolvePrecision("--precision", asked, blocker);
}

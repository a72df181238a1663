// A pickle stack machine that builds plain values only: dicts (PyDict),
// lists and tuples (arrays), numbers, strings, bytes. What a GLOBAL, a REDUCE
// or a persistent id means is the caller's (torch.ts): nothing is looked up or
// executed here.
//
// Cost: every opcode is O(1) or linear in the bytes it consumes or the items
// it pops (a MARK scan stops at the nearest mark and removes what it passed),
// so time is linear in the pickle's length; the stack is an array, never the
// JS call stack; memory is O(pickle length) (each opcode creates at most one
// value, strings and bytes no longer than their bytes in the pickle).
import { PthError } from "./error";

/** A Python dict / OrderedDict; keys are strings or numbers. */
export class PyDict {
  readonly map = new Map<unknown, unknown>();
  constructor(readonly ordered = false) {}
  get(k: unknown): unknown {
    return this.map.get(k);
  }
  has(k: unknown): boolean {
    return this.map.has(k);
  }
  keys(): unknown[] {
    return [...this.map.keys()];
  }
}

export const MARK = Symbol("mark");

/** Longest LONG1/LONG4 integer accepted, in bytes. */
export const MAX_LONG_BYTES = 64;

export interface PickleContext {
  file: string;
  /** GLOBAL / STACK_GLOBAL: a value standing for module.name, or throw to refuse it. */
  global(module: string, name: string): unknown;
  /** REDUCE: fn(*args); `fail` throws a bad-pickle error at the current byte. */
  call(fn: unknown, args: unknown, fail: (what: string) => never): unknown;
  /** BINPERSID: the object a persistent id stands for. */
  persistentLoad(pid: unknown, fail: (what: string) => never): unknown;
}

/**
 * Interpret a pickle (protocols 2-4 as torch.save writes them). Globals,
 * calls (REDUCE) and persistent ids are the context's to resolve; the machine
 * itself only builds plain values. Returns the top-level value.
 */
export function unpickle(data: Buffer, ctx: PickleContext): unknown {
  const stack: unknown[] = [];
  const memo = new Map<number, unknown>();
  let p = 0;
  const fail = (what: string): never => {
    throw new PthError(`${ctx.file}: bad pickle at byte ${p}: ${what}`);
  };
  const need = (n: number) => {
    if (p + n > data.length) fail("truncated");
  };
  const markIndex = (): number => {
    let i = stack.length - 1;
    while (i >= 0 && stack[i] !== MARK) i--;
    if (i < 0) fail("MARK missing");
    return i;
  };
  const popMark = (): unknown[] => {
    const i = markIndex();
    const items = stack.splice(i + 1);
    stack.pop();
    return items;
  };
  const pop = (): unknown => {
    if (stack.length === 0) fail("stack underflow");
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length === 0) fail("stack underflow");
    return stack[stack.length - 1];
  };
  const readLine = (): string => {
    const e = data.indexOf(0x0a, p);
    if (e < 0) fail("unterminated line");
    const s = data.subarray(p, e).toString("latin1");
    p = e + 1;
    return s;
  };
  const setItems = (d: unknown, kv: unknown[]) => {
    if (!(d instanceof PyDict)) fail("SETITEM(S) on a non-dict");
    for (let i = 0; i + 1 < kv.length; i += 2) (d as PyDict).map.set(kv[i], kv[i + 1]);
  };
  for (;;) {
    need(1);
    const op = data[p++];
    switch (op) {
      case 0x80: // PROTO
        need(1);
        if (data[p] > 5) fail(`pickle protocol ${data[p]} is not supported`);
        p++;
        break;
      case 0x95: // FRAME (protocol 4): a length we do not need
        need(8);
        p += 8;
        break;
      case 0x2e: // STOP
        if (stack.length !== 1) fail(`STOP with ${stack.length} values on the stack`);
        return stack[0];
      case 0x28: // MARK
        stack.push(MARK);
        break;
      case 0x7d: // EMPTY_DICT
        stack.push(new PyDict());
        break;
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push([]);
        break;
      case 0x74: // TUPLE
        stack.push(popMark());
        break;
      case 0x85: // TUPLE1
        stack.push([pop()]);
        break;
      case 0x86: {
        // TUPLE2
        const b = pop(),
          a = pop();
        stack.push([a, b]);
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop(),
          b = pop(),
          a = pop();
        stack.push([a, b, c]);
        break;
      }
      case 0x4a: // BININT
        need(4);
        stack.push(data.readInt32LE(p));
        p += 4;
        break;
      case 0x4b: // BININT1
        need(1);
        stack.push(data[p++]);
        break;
      case 0x4d: // BININT2
        need(2);
        stack.push(data.readUInt16LE(p));
        p += 2;
        break;
      case 0x8a: // LONG1
      case 0x8b: {
        // LONG4
        const n = op === 0x8a ? (need(1), data[p++]) : (need(4), (p += 4), data.readUInt32LE(p - 4));
        // torch.save's integers fit 8 bytes; longer ones are refused, so the
        // conversion below (linear in n anyway) stays tiny
        if (n > MAX_LONG_BYTES) fail(`a ${n}-byte integer (LONG); at most ${MAX_LONG_BYTES} bytes are accepted`);
        need(n);
        let v = 0n;
        if (n > 0) {
          const be = Buffer.from(data.subarray(p, p + n)).reverse();
          v = BigInt("0x" + be.toString("hex"));
          if (be[0] & 0x80) v -= 1n << BigInt(8 * n);
        }
        p += n;
        stack.push(v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);
        break;
      }
      case 0x49: {
        // INT (text): also True/False as I01/I00
        const s = readLine();
        stack.push(s === "01" ? true : s === "00" ? false : Number(s));
        break;
      }
      case 0x47: // BINFLOAT (big-endian double)
        need(8);
        stack.push(data.readDoubleBE(p));
        p += 8;
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x58: // BINUNICODE
      case 0x8c: // SHORT_BINUNICODE
      case 0x8d: // BINUNICODE8
      case 0x54: // BINSTRING
      case 0x55: // SHORT_BINSTRING
      case 0x42: // BINBYTES
      case 0x43: {
        // SHORT_BINBYTES
        let n: number;
        if (op === 0x8c || op === 0x55 || op === 0x43) need(1), (n = data[p]), (p += 1);
        else if (op === 0x8d) need(8), (n = Number(data.readBigUInt64LE(p))), (p += 8);
        else need(4), (n = data.readUInt32LE(p)), (p += 4);
        need(n);
        const b = data.subarray(p, p + n);
        p += n;
        if (op === 0x42 || op === 0x43) stack.push(Buffer.from(b));
        else stack.push(b.toString(op === 0x54 || op === 0x55 ? "latin1" : "utf8"));
        break;
      }
      case 0x71: // BINPUT
        need(1);
        memo.set(data[p++], top());
        break;
      case 0x72: // LONG_BINPUT
        need(4);
        memo.set(data.readUInt32LE(p), top());
        p += 4;
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x68: // BINGET
      case 0x6a: {
        // LONG_BINGET
        let k: number;
        if (op === 0x68) need(1), (k = data[p++]);
        else need(4), (k = data.readUInt32LE(p)), (p += 4);
        if (!memo.has(k)) fail(`memo entry ${k} missing`);
        stack.push(memo.get(k));
        break;
      }
      case 0x63: {
        // GLOBAL "module\nname\n"
        const module = readLine();
        const name = readLine();
        stack.push(ctx.global(module, name));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop(),
          module = pop();
        if (typeof name !== "string" || typeof module !== "string") fail("STACK_GLOBAL of non-strings");
        stack.push(ctx.global(module as string, name as string));
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop();
        const fn = pop();
        stack.push(ctx.call(fn, args, fail));
        break;
      }
      case 0x81: // NEWOBJ: cls.__new__(cls, *args); no allowed global is a class built this way
        fail("NEWOBJ is not allowed (objects other than tensors and containers)");
        break;
      case 0x62: {
        // BUILD: the OrderedDict of a state_dict carries _metadata; keep it aside
        const state = pop();
        const obj = top();
        if (!(obj instanceof PyDict)) fail("BUILD on something other than a dict");
        (obj as PyDict & { state?: unknown }).state = state;
        break;
      }
      case 0x73: {
        // SETITEM
        const v = pop(),
          k = pop();
        setItems(top(), [k, v]);
        break;
      }
      case 0x75: {
        // SETITEMS
        const kv = popMark();
        setItems(top(), kv);
        break;
      }
      case 0x61: {
        // APPEND
        const v = pop();
        const l = top();
        if (!Array.isArray(l)) fail("APPEND to a non-list");
        (l as unknown[]).push(v);
        break;
      }
      case 0x65: {
        // APPENDS: items moved from the stack straight into the list (no intermediate array)
        const i = markIndex();
        const l = stack[i - 1];
        if (!Array.isArray(l)) fail("APPENDS to a non-list");
        for (let j = i + 1; j < stack.length; j++) (l as unknown[]).push(stack[j]);
        stack.length = i;
        break;
      }
      case 0x51: {
        // BINPERSID
        stack.push(ctx.persistentLoad(pop(), fail));
        break;
      }
      case 0x30: // POP
        pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(top());
        break;
      default:
        fail(`opcode 0x${op.toString(16)} is not one torch.save writes; refused`);
    }
  }
}

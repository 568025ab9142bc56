import { readFile } from 'node:fs/promises';
import { evaluate } from './inspector.js';

/** One V8 heap space (`v8.getHeapSpaceStatistics()`): its physical (committed, resident) bytes and its used bytes. */
export type HeapSpace = { readonly name: string; readonly committed: number; readonly used: number };

/**
 * Where a process's resident memory is, read at one moment: from the kernel (VmRSS and its anonymous and
 * file-backed parts, `/proc/<pid>/status`; the anonymous mappings of `/proc/<pid>/smaps` by kind) and from the
 * process itself through its inspector (`process.memoryUsage()`, `v8.getHeapSpaceStatistics()`).
 */
export type MemoryBreakdown = {
  /** VmRSS. */
  readonly rss: number;
  /** RssAnon: anonymous pages (every heap: V8's, malloc's, thread stacks). */
  readonly rssAnon: number;
  /** RssFile + RssShmem: the binary, its libraries, and other mapped files. */
  readonly rssFile: number;
  /** Resident bytes of the `[heap]` mapping: glibc malloc's main arena (grown by brk), the main thread's. */
  readonly mainArena: number;
  /**
   * Resident bytes of the anonymous mappings shaped as glibc's other arenas (its per-thread heaps: a 64 MiB
   * reservation aligned on 64 MiB, read-write up to where it has grown): a heuristic by shape.
   */
  readonly threadArenas: number;
  /** How many such arenas. */
  readonly threadArenaCount: number;
  /** `process.memoryUsage()`: V8's heap (reserved and used), and memory outside it that V8 is told of. */
  readonly heapTotal: number;
  readonly heapUsed: number;
  readonly external: number;
  readonly arrayBuffers: number;
  readonly spaces: readonly HeapSpace[];
};

/** Physical bytes of every V8 heap space: V8's heap as resident pages. */
export const v8Committed = (memory: MemoryBreakdown): number => memory.spaces.reduce((sum, space) => sum + space.committed, 0);

const ARENA_BYTES = 64 * 2 ** 20;

type Mapping = { readonly start: bigint; readonly end: bigint; readonly perms: string; readonly path: string; rss: number };

function parseSmaps(text: string): Mapping[] {
  const mappings: Mapping[] = [];
  for (const line of text.split('\n')) {
    const header = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (header) {
      mappings.push({ start: BigInt(`0x${header[1]!}`), end: BigInt(`0x${header[2]!}`), perms: header[3]!, path: header[4]!, rss: 0 });
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB$/.exec(line);
    const last = mappings.at(-1);
    if (rss && last) last.rss = Number(rss[1]) * 1024;
  }
  return mappings;
}

/** glibc's non-main arenas: an anonymous read-write mapping at a 64 MiB boundary, the rest of the 64 MiB reserved (---p) after it. */
function threadArenasOf(mappings: readonly Mapping[]): { bytes: number; count: number } {
  let bytes = 0;
  let count = 0;
  for (const [index, mapping] of mappings.entries()) {
    if (mapping.path !== '' || !mapping.perms.startsWith('rw') || mapping.start % BigInt(ARENA_BYTES) !== 0n) continue;
    const size = mapping.end - mapping.start;
    const next = mappings[index + 1];
    const reservedAfter = next && next.path === '' && next.perms === '---p' && next.start === mapping.end ? next.end - next.start : 0n;
    if (size + reservedAfter !== BigInt(ARENA_BYTES)) continue;
    bytes += mapping.rss;
    count++;
  }
  return { bytes, count };
}

const EXPRESSION = `JSON.stringify({
  usage: process.memoryUsage(),
  spaces: process.getBuiltinModule('node:v8').getHeapSpaceStatistics(),
})`;

type Reported = {
  readonly usage: NodeJS.MemoryUsage;
  readonly spaces: readonly { space_name: string; physical_space_size: number; space_used_size: number }[];
};

/** Reads where the memory of process `pid` is; `inspectPort` is its inspector's (`--inspect`). */
export async function readMemoryBreakdown(pid: number, inspectPort: number): Promise<MemoryBreakdown> {
  const reported = JSON.parse((await evaluate(inspectPort, EXPRESSION)) as string) as Reported;
  const [status, smaps] = await Promise.all([readFile(`/proc/${pid}/status`, 'utf8'), readFile(`/proc/${pid}/smaps`, 'utf8')]);
  const kib = (field: string): number => {
    const value = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(status)?.[1];
    if (value === undefined) throw new Error(`no ${field} for pid ${pid}`);
    return Number(value) * 1024;
  };
  const mappings = parseSmaps(smaps);
  const arenas = threadArenasOf(mappings);
  return {
    rss: kib('VmRSS'),
    rssAnon: kib('RssAnon'),
    rssFile: kib('RssFile') + kib('RssShmem'),
    mainArena: mappings.filter((mapping) => mapping.path === '[heap]').reduce((sum, mapping) => sum + mapping.rss, 0),
    threadArenas: arenas.bytes,
    threadArenaCount: arenas.count,
    heapTotal: reported.usage.heapTotal,
    heapUsed: reported.usage.heapUsed,
    external: reported.usage.external,
    arrayBuffers: reported.usage.arrayBuffers,
    spaces: reported.spaces.map((space) => ({ name: space.space_name, committed: space.physical_space_size, used: space.space_used_size })),
  };
}

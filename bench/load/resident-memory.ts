import { readFile } from 'node:fs/promises';

/** Where a server's resident memory is read: its pid (same machine) or its Prometheus `/metrics`. */
export type MemorySource = { readonly kind: 'pid'; readonly pid: number } | { readonly kind: 'metrics'; readonly url: string };

/** Resident set size in bytes: `VmRSS` of /proc/<pid>/status, or `process_resident_memory_bytes`. */
export async function residentBytes(source: MemorySource): Promise<number> {
  if (source.kind === 'pid') {
    const status = await readFile(`/proc/${source.pid}/status`, 'utf8');
    const kib = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status)?.[1];
    if (kib === undefined) throw new Error(`no VmRSS for pid ${source.pid}`);
    return Number(kib) * 1024;
  }
  const response = await fetch(source.url);
  const text = await response.text();
  const value = /^process_resident_memory_bytes(?:\{[^}]*\})?\s+(\S+)$/m.exec(text)?.[1];
  if (value === undefined) throw new Error(`${source.url} has no process_resident_memory_bytes`);
  return Number(value);
}

/** The sum over every source (one per gateway). */
export async function totalResidentBytes(sources: readonly MemorySource[]): Promise<number> {
  const values = await Promise.all(sources.map(residentBytes));
  return values.reduce((sum, value) => sum + value, 0);
}

export function formatBytes(bytes: number): string {
  if (Math.abs(bytes) >= 2 ** 20) return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
  if (Math.abs(bytes) >= 2 ** 10) return `${(bytes / 2 ** 10).toFixed(1)} KiB`;
  return `${Math.round(bytes)} B`;
}

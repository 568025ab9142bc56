import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { byKind, diffHeapSummaries, heapKindOf, summarizeHeapSnapshot, type HeapSummary } from './heap-summary.js';

/**
 * Real snapshots of a small Node process, written by V8 itself: one holding 500 instances of a class of its
 * own, each with a Map and a timer, the other 1,500.
 */
const PROGRAM = `
class HeapProbe { constructor(i) { this.i = i; this.map = new Map([[i, i]]); for (let k = 0; k < 40; k++) this['p' + k] = k; } }
const v8 = require('node:v8');
const [file, count] = process.argv.slice(1);
globalThis.held = Array.from({ length: Number(count) }, (_, i) => new HeapProbe(i));
globalThis.timers = Array.from({ length: Number(count) }, () => setTimeout(() => undefined, 60000));
v8.writeHeapSnapshot(file);
process.exit(0);
`;

let dir: string;
let fewer: HeapSummary;
let held: HeapSummary;

async function snapshot(name: string, count: number): Promise<HeapSummary> {
  const file = path.join(dir, `${name}.heapsnapshot`);
  await promisify(execFile)(process.execPath, ['-e', PROGRAM, file, String(count)]);
  return summarizeHeapSnapshot(await readFile(file));
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'heap-summary-'));
  [fewer, held] = await Promise.all([snapshot('fewer', 500), snapshot('held', 1_500)]);
}, 60_000);

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const group = (summary: HeapSummary, type: string, name: string) => summary.groups.get(`${type}\u0000${name}`);

describe('a heap snapshot summed up', () => {
  it('counts the objects of each constructor, with their own sizes', () => {
    expect(group(fewer, 'object', 'HeapProbe')?.count).toBe(500);
    expect(group(held, 'object', 'HeapProbe')?.count).toBe(1_500);
    expect(group(held, 'object', 'HeapProbe')?.selfBytes).toBeGreaterThanOrEqual(1_500 * 16);
    let total = 0;
    for (const entry of held.groups.values()) total += entry.selfBytes;
    expect(held.totalBytes).toBe(total);
    expect(held.totalBytes).toBeGreaterThan(fewer.totalBytes);
  });

  it('counts with each object the property stores and hash tables it owns', () => {
    // 40 properties added after construction: a store of their own, beside the object.
    const probes = group(held, 'object', 'HeapProbe')!;
    expect(probes.storeBytes).toBeGreaterThanOrEqual(1_500 * 40 * 4);
    expect(group(held, 'object', 'Map')?.storeBytes).toBeGreaterThan(0);
    expect(group(held, 'array', '(object properties)')?.selfBytes).toBeGreaterThanOrEqual(probes.storeBytes);
  });

  it('counts a store several objects share for none of them', () => {
    const meta = '"meta":{"node_fields":["type","name","id","self_size","edge_count"],"node_types":[["object","array"]],"edge_fields":["type","name_or_index","to_node"],"edge_types":[["internal"]]}';
    // Two objects A; a store of 100 bytes both point to, and one of 7 bytes only the second has.
    const nodes = [0, 0, 1, 10, 1, 0, 0, 2, 10, 2, 1, 1, 3, 100, 0, 1, 1, 4, 7, 0];
    const edges = [0, 2, 10, 0, 2, 10, 0, 3, 15];
    const text = `{"snapshot":{${meta},"node_count":4,"edge_count":3},\n"nodes":[${nodes.join(',')}],\n"edges":[${edges.join(',')}],\n"strings":["A","S","properties","elements"]}`;
    expect(group(summarizeHeapSnapshot(Buffer.from(text)), 'object', 'A')).toEqual({ type: 'object', name: 'A', count: 2, selfBytes: 20, storeBytes: 7 });
  });

  it('finds the growth between two snapshots per constructor, largest first', () => {
    const diff = diffHeapSummaries(fewer, held);
    const probes = diff.find((entry) => entry.name === 'HeapProbe');
    expect(probes).toMatchObject({ type: 'object', count: 1_000 });
    expect(probes?.selfBytes).toBe((group(held, 'object', 'HeapProbe')?.selfBytes ?? 0) - (group(fewer, 'object', 'HeapProbe')?.selfBytes ?? 0));
    expect(diff.find((entry) => entry.type === 'object' && entry.name === 'Map')?.count).toBe(1_000);
    expect(diff.find((entry) => entry.type === 'object' && entry.name === 'Timeout')?.count).toBe(1_000);
    const sizes = diff.map((entry) => entry.selfBytes);
    expect(sizes).toEqual([...sizes].sort((a, b) => b - a));
  });

  it('sums the growth per kind: the timers and the Maps where they belong', () => {
    const kinds = byKind(diffHeapSummaries(fewer, held));
    expect(kinds.get('timers')?.count).toBe(1_000);
    expect(kinds.get('Maps and Sets')?.count).toBeGreaterThanOrEqual(1_000);
    let total = 0;
    for (const kind of kinds.values()) total += kind.selfBytes;
    expect(total).toBe(held.totalBytes - fewer.totalBytes);
  });

  it('refuses what is not a heap snapshot, and one whose node array is cut short', () => {
    expect(() => summarizeHeapSnapshot(Buffer.from('{"hello": 1}'))).toThrow(/not a V8 heap snapshot/);
    const meta = '"meta":{"node_fields":["type","name","id","self_size","edge_count"],"node_types":[["object"]],"edge_fields":["type","name_or_index","to_node"],"edge_types":[["internal"]]}';
    const header = `{"snapshot":{${meta},"node_count":2,"edge_count":0},\n`;
    expect(() => summarizeHeapSnapshot(Buffer.from(`${header}"nodes":[0,0,1,8,0],"edges":[],"strings":["A"]}`))).toThrow(/5 node fields, 10 announced/);
    expect(summarizeHeapSnapshot(Buffer.from(`${header}"nodes":[0,0,1,8,0,0,0,3,4,0],"edges":[],"strings":["A"]}`))).toMatchObject({ totalBytes: 12, nodeCount: 2 });
  });
});

describe('the kind of a snapshot node', () => {
  it.each([
    ['closure', 'onMessage', 'closures'],
    ['object', 'Timeout', 'timers'],
    ['object', 'Map', 'Maps and Sets'],
    ['array', 'system / OrderedHashMap', 'Maps and Sets'],
    ['object', 'SubscriptionImpl', 'NATS subscriptions'],
    ['object', 'Buffer', 'buffers'],
    ['native', 'system / JSArrayBufferData', 'buffers'],
    ['object', 'WebSocket', 'ws and net objects'],
    ['object', 'Receiver', 'ws and net objects'],
    ['object', 'Promise', 'promises'],
    ['concatenated string', '(concatenated string)', 'strings'],
    ['array', '(object properties)', 'arrays and V8 internals'],
    ['object', 'Object', 'other objects'],
  ] as const)('%s %s is %s', (type, name, kind) => {
    expect(heapKindOf(type, name)).toBe(kind);
  });
});

/**
 * A V8 heap snapshot (`.heapsnapshot`, as `--heapsnapshot-signal` or `v8.writeHeapSnapshot` write it) summed
 * up by what its objects are: count and self size per node type and name (for an object, its constructor).
 * The snapshot is read without `JSON.parse` of the whole file: the node array of a gateway holding 10,000
 * sockets runs to hundreds of megabytes of text, so it is scanned number by number; only the header and the
 * string table are parsed as JSON.
 */

/**
 * `storeBytes`: the property and element stores and hash tables these objects own (their `properties`,
 * `elements` and `table` edges; a store several objects share, like V8's empty arrays, is left out), which the
 * snapshot lists as nodes of their own (`array (object properties)`, ...): what the objects take with them,
 * beyond their self size.
 */
export type HeapGroup = { readonly type: string; readonly name: string; count: number; selfBytes: number; storeBytes: number };

/** Per `type` and `name`: how many nodes and how many bytes of their own (not what they retain). */
export type HeapSummary = { readonly groups: Map<string, HeapGroup>; readonly totalBytes: number; readonly nodeCount: number };

type SnapshotMeta = {
  readonly node_fields: readonly string[];
  readonly node_types: readonly [readonly string[], ...unknown[]];
  readonly edge_fields: readonly string[];
  readonly edge_types: readonly [readonly string[], ...unknown[]];
};

const NODES_MARK = Buffer.from('"nodes":[');
const EDGES_MARK = Buffer.from('"edges":[');
/** Internal edges from an object to a store of its own. */
const STORE_EDGES = new Set(['properties', 'elements', 'table']);
const STRINGS_MARK = Buffer.from('"strings":[');

/** The node array, from `start` (just past its `[`) to its `]`: non-negative integers separated by commas and newlines. */
function scanNumbers(buffer: Buffer, start: number, expected: number, what: string): Float64Array {
  const values = new Float64Array(expected);
  let count = 0;
  let current = 0;
  let inNumber = false;
  for (let index = start; index < buffer.length; index++) {
    const byte = buffer[index]!;
    if (byte >= 48 && byte <= 57) {
      current = current * 10 + (byte - 48);
      inNumber = true;
      continue;
    }
    if (inNumber) {
      if (count >= expected) throw new Error(`heap snapshot: more than the ${expected} ${what} fields announced`);
      values[count++] = current;
      current = 0;
      inNumber = false;
    }
    if (byte === 93 /* ] */) break;
  }
  if (count !== expected) throw new Error(`heap snapshot: ${count} ${what} fields, ${expected} announced`);
  return values;
}

/** Sums up a heap snapshot file's content. @throws Error when it is not one. */
export function summarizeHeapSnapshot(buffer: Buffer): HeapSummary {
  const nodesAt = buffer.indexOf(NODES_MARK);
  const edgesAt = buffer.indexOf(EDGES_MARK);
  const stringsAt = buffer.lastIndexOf(STRINGS_MARK);
  if (nodesAt < 0 || edgesAt < 0 || stringsAt < 0) throw new Error('not a V8 heap snapshot (no "nodes", "edges" or "strings")');
  const header = JSON.parse(`${buffer.subarray(0, nodesAt).toString('utf8').trim().replace(/,$/, '')}}`) as {
    snapshot: { meta: SnapshotMeta; node_count: number; edge_count: number };
  };
  const { meta, node_count: nodeCount, edge_count: edgeCount } = header.snapshot;
  const fields = meta.node_fields;
  const width = fields.length;
  const typeField = fields.indexOf('type');
  const nameField = fields.indexOf('name');
  const sizeField = fields.indexOf('self_size');
  const edgeCountField = fields.indexOf('edge_count');
  const edgeWidth = meta.edge_fields.length;
  const [edgeTypeField, edgeNameField, edgeToField] = ['type', 'name_or_index', 'to_node'].map((field) => meta.edge_fields.indexOf(field));
  if ([typeField, nameField, sizeField, edgeCountField, edgeTypeField, edgeNameField, edgeToField].some((index) => index === undefined || index < 0)) {
    throw new Error('heap snapshot: a node or edge field is missing (type, name, self_size, edge_count, name_or_index, to_node)');
  }
  const nodes = scanNumbers(buffer, nodesAt + NODES_MARK.length, nodeCount * width, 'node');
  const edges = scanNumbers(buffer, edgesAt + EDGES_MARK.length, edgeCount * edgeWidth, 'edge');
  const internalEdge = meta.edge_types[0].indexOf('internal');
  const end = buffer.lastIndexOf(']');
  const strings = JSON.parse(buffer.subarray(stringsAt + STRINGS_MARK.length - 1, end + 1).toString('utf8')) as string[];
  const types = meta.node_types[0];

  const isStoreEdge = (at: number): boolean => edges[at + edgeTypeField!] === internalEdge && STORE_EDGES.has(strings[edges[at + edgeNameField!]!] ?? '');
  // A store shared by several objects (V8's empty arrays, say) is nobody's own: only single-owner ones count.
  const storeOwners = new Map<number, number>();
  for (let at = 0; at < edges.length; at += edgeWidth) {
    if (isStoreEdge(at)) storeOwners.set(edges[at + edgeToField!]!, (storeOwners.get(edges[at + edgeToField!]!) ?? 0) + 1);
  }

  const groups = new Map<string, HeapGroup>();
  let totalBytes = 0;
  let edge = 0;
  for (let offset = 0; offset < nodes.length; offset += width) {
    const type = types[nodes[offset + typeField]!] ?? '?';
    const name = strings[nodes[offset + nameField]!] ?? '?';
    const size = nodes[offset + sizeField]!;
    let stores = 0;
    const edgesEnd = edge + nodes[offset + edgeCountField]! * edgeWidth;
    for (; edge < edgesEnd; edge += edgeWidth) {
      const store = edges[edge + edgeToField!]!;
      if (isStoreEdge(edge) && storeOwners.get(store) === 1) stores += nodes[store + sizeField]!;
    }
    totalBytes += size;
    const key = `${type}\u0000${name}`;
    const group = groups.get(key);
    if (group) {
      group.count++;
      group.selfBytes += size;
      group.storeBytes += stores;
    } else {
      groups.set(key, { type, name, count: 1, selfBytes: size, storeBytes: stores });
    }
  }
  return { groups, totalBytes, nodeCount };
}

/** What grew from `before` to `after`, per group (negative when it shrank), largest growth first. */
export function diffHeapSummaries(before: HeapSummary, after: HeapSummary): HeapGroup[] {
  const keys = new Set([...before.groups.keys(), ...after.groups.keys()]);
  const diff: HeapGroup[] = [];
  for (const key of keys) {
    const was = before.groups.get(key);
    const now = after.groups.get(key);
    const type = now?.type ?? was?.type ?? '?';
    const name = now?.name ?? was?.name ?? '?';
    diff.push({
      type,
      name,
      count: (now?.count ?? 0) - (was?.count ?? 0),
      selfBytes: (now?.selfBytes ?? 0) - (was?.selfBytes ?? 0),
      storeBytes: (now?.storeBytes ?? 0) - (was?.storeBytes ?? 0),
    });
  }
  return diff.sort((a, b) => b.selfBytes - a.selfBytes);
}

/** The kinds a socket's memory is reported in, in the order they are printed. */
export const HEAP_KINDS = [
  'closures',
  'timers',
  'Maps and Sets',
  'NATS subscriptions',
  'buffers',
  'ws and net objects',
  'promises',
  'strings',
  'arrays and V8 internals',
  'other objects',
] as const;

export type HeapKind = (typeof HEAP_KINDS)[number];

const TIMERS = /^(Timeout|TimersList|Immediate)$/;
const MAPS = /^(Map|Set|WeakMap|WeakSet)$|OrderedHash|HashTable/;
const NATS = /Subscription|QueuedIterator|ProtocolHandler|MsgImpl/;
const BUFFERS = /^(Buffer|FastBuffer|Uint8Array|ArrayBuffer|DataView|SharedArrayBuffer)$|backing_store|ArrayBuffer/;
const NET = /^(WebSocket|Receiver|Sender|PerMessageDeflate|Socket|TCP|TCPWrap|WriteWrap|ShutdownWrap|HTTPParser|IncomingMessage|ServerResponse|ReadableState|WritableState|BufferList|EventEmitter|Duplex|Writable|Readable)$/;

/** Which kind a snapshot node belongs to, from its type and name (constructor). */
export function heapKindOf(type: string, name: string): HeapKind {
  if (type === 'closure') return 'closures';
  if (type === 'string' || type === 'concatenated string' || type === 'sliced string') return 'strings';
  if (TIMERS.test(name)) return 'timers';
  if (NATS.test(name)) return 'NATS subscriptions';
  if (MAPS.test(name)) return 'Maps and Sets';
  if (BUFFERS.test(name)) return 'buffers';
  if (NET.test(name)) return 'ws and net objects';
  if (name === 'Promise' || name === 'PromiseReaction' || name === 'PromiseCapability') return 'promises';
  if (type === 'object' || type === 'native') return 'other objects';
  return 'arrays and V8 internals';
}

/** The growth summed per kind. */
export function byKind(diff: readonly HeapGroup[]): Map<HeapKind, { count: number; selfBytes: number }> {
  const kinds = new Map<HeapKind, { count: number; selfBytes: number }>(HEAP_KINDS.map((kind) => [kind, { count: 0, selfBytes: 0 }]));
  for (const group of diff) {
    const kind = kinds.get(heapKindOf(group.type, group.name))!;
    kind.count += group.count;
    kind.selfBytes += group.selfBytes;
  }
  return kinds;
}

/**
 * The metric names a PromQL expression reads: its identifiers minus functions and aggregations (a name
 * followed by `(`), keywords, label matchers and grouping lists, ranges, strings, numbers and durations.
 * Small on purpose: enough for the alert rules and dashboard in deploy/, not a PromQL parser.
 */
export function metricNamesIn(expression: string): Set<string> {
  const stripped = expression
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, ' ')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\boffset\s+-?[\w$]+/g, ' ');
  const names = new Set<string>();
  const token = /(\d+(?:\.\d+)?(?:e[+-]?\d+)?)|([A-Za-z_:][\w:]*)(\s*\()?/gi;
  for (let match = token.exec(stripped); match; match = token.exec(stripped)) {
    const [, number, identifier, call] = match;
    if (number !== undefined || identifier === undefined || call !== undefined) continue;
    if (!KEYWORDS.has(identifier.toLowerCase())) names.add(identifier);
  }
  return names;
}

const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'inf', 'nan']);

/** What a Prometheus text exposition declares: each metric's name and type, from its `# TYPE` line. */
export function declaredMetrics(exposition: string): Map<string, string> {
  const declared = new Map<string, string>();
  for (const match of exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)) declared.set(match[1]!, match[2]!);
  return declared;
}

/** Whether `name` is a series of a declared metric: the metric itself, or a histogram's or summary's part. */
export function isExposed(name: string, declared: ReadonlyMap<string, string>): boolean {
  if (declared.has(name)) return true;
  const part = /^(.+)_(bucket|sum|count)$/.exec(name);
  if (!part) return false;
  const type = declared.get(part[1]!);
  return type === 'histogram' || (type === 'summary' && part[2] !== 'bucket');
}

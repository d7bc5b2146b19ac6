// Where a field path is in config.yaml: the node, its line:column, and the path as printed.
import { isAlias, isMap, isScalar, isSeq, type Document, type LineCounter, type Node as YamlNode } from 'yaml';

export type Segment = string | number;
export type ConfigIssue = { file: string; line: number; column: number; path: string; message: string };

export function keyString(key: unknown): string {
  return isScalar(key) ? String(key.value) : String(key);
}

/** The node at `path`, or the deepest ancestor that exists (complete = false). */
export function locate(doc: Document, path: Segment[]): { node: YamlNode | null; complete: boolean } {
  let node = doc.contents as YamlNode | null;
  for (const seg of path) {
    if (isAlias(node)) node = node.resolve(doc) ?? null;
    if (isMap(node)) {
      const pair = node.items.find((p) => keyString(p.key) === String(seg));
      if (!pair) return { node, complete: false };
      node = (pair.value ?? pair.key) as YamlNode | null;
    } else if (isSeq(node) && typeof seg === 'number' && node.items[seg] !== undefined) {
      node = node.items[seg] as YamlNode;
    } else {
      return { node, complete: false };
    }
  }
  return { node, complete: true };
}

/** The key node of `key` in a mapping (for "unknown key" reports, which point at the key). */
export function keyNode(map: YamlNode | null, key: string): YamlNode | null {
  if (!isMap(map)) return null;
  const pair = map.items.find((p) => keyString(p.key) === key);
  return (pair?.key as YamlNode | undefined) ?? null;
}

/** Builds issues for one file: a node (or offset) becomes line:column, a path becomes `clients[0].secret`. */
export function issueMaker(file: string, lineCounter: LineCounter) {
  const at = (offset: number | undefined) => {
    const { line, col } = lineCounter.linePos(offset ?? 0);
    return { line, column: col };
  };
  return {
    atOffset: (offset: number | undefined, message: string): ConfigIssue => ({ file, ...at(offset), path: '', message }),
    atNode: (node: YamlNode | null | undefined, fieldPath: Segment[], message: string): ConfigIssue => ({ file, ...at(node?.range?.[0]), path: formatPath(fieldPath), message }),
  };
}

export function formatPath(path: Segment[]): string {
  return path
    .map((s, i) => (typeof s === 'number' ? `[${s}]` : /^[A-Za-z_][\w-]*$/.test(s) ? (i === 0 ? s : `.${s}`) : `[${JSON.stringify(s)}]`))
    .join('');
}

/** One line per issue: `config/config.yaml:12:5 clients[0].secret: must not be empty`. */
export function formatIssue(i: ConfigIssue): string {
  const where = i.line > 0 ? `${i.file}:${i.line}:${i.column}` : i.file;
  return i.path ? `${where} ${i.path}: ${i.message}` : `${where}: ${i.message}`;
}

export function sortIssues(issues: ConfigIssue[]): ConfigIssue[] {
  return issues.sort((a, b) => a.line - b.line || a.column - b.column);
}

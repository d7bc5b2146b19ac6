// ${ENV_VAR} substitution in config.yaml string values, and hiding the substituted values again in messages.
import { isMap, isSeq, visit, type Document, type Node as YamlNode } from 'yaml';
import { keyString, type Segment } from './yaml-position.js';

export type Substitution = {
  problems: { node: YamlNode; path: Segment[]; message: string }[];
  /** Scalars with an unset variable or a malformed reference: already reported. */
  broken: Set<YamlNode>;
  /** [substituted value, what to print instead]. */
  redactions: [string, string][];
};

const REFERENCE = /\$(\$?)\{([^}]*)(\}?)/g;
const NAME_AND_DEFAULT = /^([A-Za-z_][A-Za-z0-9_]*)(?::-([\s\S]*))?$/;

/** Replaces ${NAME} and ${NAME:-default} in string values (not keys); "$${" stands for a literal "${". */
export function substituteEnv(doc: Document, env: NodeJS.ProcessEnv): Substitution {
  const out: Substitution = { problems: [], broken: new Set(), redactions: [] };
  visit(doc, {
    Scalar(key, node, ancestors) {
      if (key === 'key' || typeof node.value !== 'string' || !node.value.includes('${')) return;
      const path = yamlPath(ancestors, node);
      const names: string[] = [];
      const value = node.value.replace(REFERENCE, (whole: string, escaped: string, inner: string, close: string) => {
        if (escaped) return whole.slice(1);
        const m = close ? NAME_AND_DEFAULT.exec(inner) : null;
        if (!m) {
          out.problems.push({ node, path, message: 'invalid variable reference: use ${NAME} or ${NAME:-default}, or "$${" for a literal "${"' });
          out.broken.add(node);
          return '';
        }
        const [, name, fallback] = m as unknown as [string, string, string | undefined];
        names.push(name);
        const set = env[name];
        // As in the shell, ":-" also replaces a variable that is set but empty.
        if (fallback !== undefined) return set ? set : fallback;
        if (set !== undefined) return set;
        out.problems.push({ node, path, message: `environment variable ${name} is not set; set it, or give a default: \${${name}:-value}` });
        out.broken.add(node);
        return '';
      });
      if (names.length > 0 && value !== '') out.redactions.push([value, `(value from ${names.map((n) => `\${${n}}`).join(', ')})`]);
      node.value = value;
    },
  });
  return out;
}

/** Replaces every substituted value in `text` by the name of its variable. */
export function redactSubstitutions(text: string, redactions: [string, string][]): string {
  return redactions.reduce((t, [value, label]) => redactValue(t, value, label), text);
}

function yamlPath(ancestors: readonly unknown[], node: YamlNode): Segment[] {
  const path: Segment[] = [];
  const chain = [...ancestors, node];
  for (let i = 0; i < chain.length - 1; i++) {
    const parent = chain[i];
    const child = chain[i + 1];
    // A map's child in the chain is the Pair holding the node.
    if (isSeq(parent)) path.push(parent.items.indexOf(child as never));
    else if (isMap(parent)) path.push(keyString((child as { key: unknown }).key));
  }
  return path;
}

function redactValue(text: string, value: string, label: string): string {
  let out = text.split(JSON.stringify(value)).join(label);
  // Short values would also match ordinary words; quoted ones were caught above.
  if (value.length >= 6) out = out.split(value).join(label);
  return out;
}

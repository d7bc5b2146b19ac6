// JSON.parse keeps the last of two equal keys without a word; log pipelines that refuse such lines
// (or keep the first) do not. This reads the raw text and reports every key an object has twice.

/** "path.key" for every key that occurs more than once in one object of the JSON text `raw`. */
export function duplicateKeys(raw: string): string[] {
  let i = 0;
  const found: string[] = [];
  const ws = () => {
    while (/\s/.test(raw[i] ?? '')) i++;
  };
  const string = (): string => {
    const start = i;
    i++;
    while (raw[i] !== '"') i += raw[i] === '\\' ? 2 : 1;
    i++;
    return JSON.parse(raw.slice(start, i)) as string;
  };
  const value = (path: string): void => {
    ws();
    if (raw[i] === '{') {
      i++;
      const seen = new Set<string>();
      for (ws(); raw[i] !== '}'; ws()) {
        if (raw[i] === ',') {
          i++;
          ws();
        }
        const key = string();
        if (seen.has(key)) found.push(path ? `${path}.${key}` : key);
        seen.add(key);
        ws();
        i++; // ':'
        value(path ? `${path}.${key}` : key);
      }
      i++;
    } else if (raw[i] === '[') {
      i++;
      for (let n = 0; (ws(), raw[i] !== ']'); n++) {
        if (raw[i] === ',') i++;
        value(`${path}[${n}]`);
      }
      i++;
    } else if (raw[i] === '"') string();
    else while (i < raw.length && !/[,}\]\s]/.test(raw[i]!)) i++;
  };
  value('');
  return found;
}

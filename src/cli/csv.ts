// A small strict RFC 4180 reader: comma separator, "..." quoting with "" for a quote, CRLF or LF,
// quoted fields may span lines. Anything else (a stray quote, text after a closing quote, an
// unterminated quote) is an error with its line, never a guess.

export interface CsvRecord {
  /** 1-based line where the record starts. */
  line: number;
  fields: string[];
}

export type CsvResult = { ok: true; records: CsvRecord[] } | { ok: false; line: number; message: string };

/** Parses CSV text; blank lines are skipped, a leading UTF-8 BOM is ignored. */
export function parseCsv(text: string): CsvResult {
  const records: CsvRecord[] = [];
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  let line = 1;
  const n = text.length;
  while (i < n) {
    const start = line;
    const fields: string[] = [];
    for (;;) {
      let field = '';
      if (text[i] === '"') {
        i++;
        for (;;) {
          if (i >= n) return { ok: false, line: start, message: 'unterminated quoted field' };
          const c = text[i]!;
          if (c === '"') {
            if (text[i + 1] === '"') {
              field += '"';
              i += 2;
              continue;
            }
            i++;
            break;
          }
          if (c === '\n') line++;
          field += c;
          i++;
        }
        if (i < n && text[i] !== ',' && text[i] !== '\n' && !(text[i] === '\r' && text[i + 1] === '\n')) {
          return { ok: false, line, message: 'unexpected text after a closing quote' };
        }
      } else {
        const end = nextDelimiter(text, i);
        field = text.slice(i, end);
        if (field.includes('"')) return { ok: false, line, message: 'a quote inside an unquoted field (quote the whole field and double the quote)' };
        i = end;
      }
      fields.push(field);
      if (text[i] === ',') {
        i++;
        continue;
      }
      // End of record: LF, CRLF or end of text.
      if (text[i] === '\r') i++;
      if (text[i] === '\n') i++;
      line++;
      break;
    }
    if (!(fields.length === 1 && fields[0] === '')) records.push({ line: start, fields });
  }
  return { ok: true, records };
}

function nextDelimiter(text: string, from: number): number {
  let i = from;
  while (i < text.length) {
    const c = text[i];
    if (c === ',' || c === '\n' || (c === '\r' && text[i + 1] === '\n')) return i;
    i++;
  }
  return i;
}

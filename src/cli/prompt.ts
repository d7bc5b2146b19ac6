// Secrets the CLI asks for (passwords, codes, passphrases): typed on the terminal without echo, or read
// line by line from stdin when stdin is not a terminal (scripts). Never from argv, where `ps` shows them.
import { createInterface, type Interface } from 'node:readline';
import { CliError } from './context.js';

export interface LineSource {
  /** The next answer; `prompt` is shown on a terminal only. Throws CliError when stdin ends first. */
  ask(prompt: string, what: string): Promise<string>;
  close(): void;
}

/** Reads from process.stdin: a terminal gets prompts on stderr and no echo; a pipe gives one line per ask. */
export function stdinLines(): LineSource {
  return process.stdin.isTTY ? terminalLines() : pipedLines();
}

function pipedLines(): LineSource {
  const rl: Interface = createInterface({ input: process.stdin, crlfDelay: Infinity, terminal: false });
  const it = rl[Symbol.asyncIterator]();
  return {
    async ask(_prompt, what) {
      const next = await it.next();
      if (next.done) throw new CliError(`stdin ended before the ${what}: give one line per answer`);
      return next.value;
    },
    close: () => rl.close(),
  };
}

function terminalLines(): LineSource {
  const stdin = process.stdin;
  return {
    ask(prompt) {
      process.stderr.write(prompt);
      return new Promise((resolve, reject) => {
        let typed = '';
        stdin.setRawMode(true);
        stdin.resume();
        stdin.setEncoding('utf8');
        const done = (err?: Error) => {
          stdin.off('data', onData);
          stdin.setRawMode(false);
          stdin.pause();
          process.stderr.write('\n');
          if (err) reject(err);
          else resolve(typed);
        };
        const onData = (chunk: string) => {
          for (const ch of chunk) {
            if (ch === '\r' || ch === '\n') return done();
            if (ch === '\u0003') return done(new CliError('interrupted'));
            if (ch === '\u0004' && typed === '') return done(new CliError('no answer (end of input)'));
            if (ch === '\u007f' || ch === '\b') typed = typed.slice(0, -1);
            else typed += ch;
          }
        };
        stdin.on('data', onData);
      });
    },
    close: () => {},
  };
}

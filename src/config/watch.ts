// Reload trigger: the config file changed on disk. Signals (SIGHUP) are cli/serve's business.
import { watch } from 'node:fs';
import { basename, dirname } from 'node:path';

const DEBOUNCE_MS = 200;

/**
 * Calls `onChange` once things settle (~200 ms) after the file is written, replaced or renamed
 * into place; returns a function that stops watching. `onError` hears watcher failures (the
 * directory was removed, say), after which watching has stopped and SIGHUP still reloads.
 */
export function watchConfig(path: string, onChange: () => void, onError: (err: Error) => void = () => {}): () => void {
  const name = basename(path);
  let timer: NodeJS.Timeout | undefined;
  // Watch the directory, not the file: editors and deploy tools write a new file and rename it
  // over the old one, and a watch on the old inode would never fire again.
  const watcher = watch(dirname(path), (_event, filename) => {
    // Some platforms do not report the name; then any change in the directory counts.
    if (filename !== null && filename !== name) return;
    clearTimeout(timer);
    timer = setTimeout(onChange, DEBOUNCE_MS);
  });
  const stop = () => {
    clearTimeout(timer);
    watcher.close();
  };
  watcher.on('error', (err) => {
    stop();
    onError(err);
  });
  return stop;
}

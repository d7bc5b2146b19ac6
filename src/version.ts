// The package version, read from package.json beside src/ and dist/ (one directory up from either).
import { readFileSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { name: string; version: string };

export const VERSION: string = pkg.version;

/** "radius-mfa 0.1.0 (node v22.11.0)": what --version prints and the start-up log line carries. */
export function versionLine(): string {
  return `radius-mfa ${VERSION} (node ${process.version})`;
}

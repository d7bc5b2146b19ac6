// typescript-eslint's recommended rules, type-aware where it finds real bugs (floating promises,
// misused promises), without the stylistic noise. Layering is dependency-cruiser's (.dependency-cruiser.cjs).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['build/', 'dist/', 'node_modules/', 'web/', 'native/', 'coverage/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      // node:test's test() and describe() return promises the runner awaits.
      '@typescript-eslint/no-floating-promises': ['error', { allowForKnownSafeCalls: [{ from: 'package', name: ['test', 'describe', 'it', 'suite'], package: 'node:test' }] }],
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: false }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      // Named exports only (STYLE rule 2) is kept by review; these two would only add noise here.
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/no-unused-expressions': ['error', { allowShortCircuit: true, allowTernary: true }],
      // Flags `let x = []` before a try that assigns it: the initial value documents the fallback.
      'no-useless-assignment': 'off',
      // A `let` read by a closure before its one assignment (a server's handler) cannot be const.
      'prefer-const': ['error', { destructuring: 'all', ignoreReadBeforeAssign: true }],
      '@typescript-eslint/no-explicit-any': 'error',
      // better-sqlite3 12 aborts on Node 24 and 13 crashes on Node 20: src/store/sqlite-driver.ts picks one.
      '@typescript-eslint/no-restricted-imports': ['error', { paths: ['better-sqlite3', 'better-sqlite3-napi'].map((name) => ({ name, allowTypeImports: true, message: 'import { Database } from src/store/sqlite-driver.ts: it loads the better-sqlite3 this Node line can run' })) }],
    },
  },
  { files: ['src/store/sqlite-driver.ts'], rules: { '@typescript-eslint/no-restricted-imports': 'off' } },
  {
    files: ['**/*.mjs', '**/*.cjs', '**/*.js'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', module: 'writable', URL: 'readonly', performance: 'readonly' } },
  },
);

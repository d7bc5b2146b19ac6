// The layering of src/ (docs/../STYLE: dependency direction), checked by `npm run lint` (and so by `npm test` in CI).
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-cycles',
      severity: 'error',
      comment: 'An import circle anywhere in src/ (type-only imports count: they tie the modules together just the same).',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'radius-is-the-bottom',
      severity: 'error',
      comment: 'src/radius/ is the protocol: it imports only node: built-ins, packages, shared/ and itself.',
      from: { path: '^src/radius/' },
      to: { path: '^src/', pathNot: ['^src/radius/', '^src/shared/'] },
    },
    {
      name: 'shared-is-the-bottom',
      severity: 'error',
      comment: 'src/shared/ is used by every layer and uses none.',
      from: { path: '^src/shared/' },
      to: { path: '^src/', pathNot: '^src/shared/' },
    },
    {
      name: 'flow-has-no-sockets-or-http',
      severity: 'error',
      comment: 'src/flow/ is policy: no sockets (node:dgram, node:net), no HTTP framework, no packet server.',
      from: { path: '^src/flow/' },
      to: { path: ['^(node:)?(dgram|net|http|https)$', '^node_modules/(fastify|@fastify)/', '^src/(radius/server|radius/udp-socket|api|portal|http)'] },
    },
    {
      name: 'no-upward-to-entry-points',
      severity: 'error',
      comment: 'Nothing imports the CLI, the composition root or `serve`: they are the top.',
      from: { path: '^src/', pathNot: '^src/(cli|app|serve)\\.ts$|^src/cli/' },
      to: { path: '^src/(cli\\.ts|app\\.ts|serve\\.ts|cli/)' },
    },
    {
      name: 'mfa-not-above-store-or-config',
      severity: 'error',
      comment: 'src/mfa/ owns the second-factor mechanisms and their types (enrollments, pushes): it takes narrow settings and records, and imports neither store/ nor config/.',
      from: { path: '^src/mfa/' },
      to: { path: '^src/(store|config)/' },
    },
    {
      name: 'not-on-test',
      severity: 'error',
      comment: 'src/, bench/ and scripts/ never import test/; the engines both tests and the bench start are in scripts/engines/.',
      from: { path: '^(src|bench|scripts)/' },
      to: { path: '^test/' },
    },
    {
      name: 'src-not-on-tooling',
      severity: 'error',
      comment: 'The product imports neither the bench nor scripts/ (neither is in the npm package).',
      from: { path: '^src/' },
      to: { path: '^(bench|scripts)/' },
    },
    {
      name: 'bench-not-on-cli',
      severity: 'error',
      comment: 'bench/ measures the server; it does not borrow the admin CLI.',
      from: { path: '^bench/' },
      to: { path: '^src/cli' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default'], extensions: ['.ts', '.js', '.mjs'] },
    reporterOptions: { text: { highlightFocused: true } },
  },
};

import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

// Layers and what each may import (DESIGN.md, "Dependency rule"). `core` imports nothing else in
// the repo; the service layers reach each other only through `core` seams or over HTTP.
const layers = ['core', 'client', 'watchdog', 'gateway', 'deploy', 'queue', 'connectors', 'cli'];
const allowed = {
  core: [],
  // fnbus's HTTP client of a gateway: how the queue worker, connectors and CLI reach one.
  client: ['core'],
  watchdog: ['core'],
  gateway: ['core'],
  deploy: ['core', 'watchdog'],
  queue: ['core', 'client'],
  connectors: ['core', 'client'],
  cli: layers,
};
const layerRules = layers.map((layer) => ({
  files: [`${layer}/**/*.ts`],
  rules: {
    'no-restricted-imports': [
      'error',
      {
        patterns: layers
          .filter((other) => other !== layer && !allowed[layer].includes(other))
          .map((other) => ({
            group: [`**/${other}/*`, `**/${other}/**`],
            message: `${layer}/ may not import ${other}/ (see DESIGN.md, dependency rule)`,
          })),
      },
    ],
  },
}));

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'test/fixtures/', '.bench/'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          // node:test registers tests synchronously; their promises are the runner's to await.
          allowForKnownSafeCalls: [
            { from: 'package', package: 'node:test', name: ['describe', 'it', 'test', 'suite'] },
          ],
        },
      ],
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', ignoreRestSiblings: true },
      ],
    },
  },
  {
    files: ['**/*.js', '**/*.mjs', '**/*.cjs'],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: { globals: globals.node },
  },
  {
    files: ['**/*.cjs'],
    languageOptions: { sourceType: 'commonjs' },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  ...layerRules,
);

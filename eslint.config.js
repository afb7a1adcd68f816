// Lint for the whole repository: `npm run lint` (ESLint, then knip). TypeScript is linted with
// type information from the root tsconfig.json, whose include globs cover packages/*, services/*
// (sources, scripts, benches, tests) and deploy/: new files there are linted without listing them.
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default defineConfig(
  { ignores: ['**/node_modules/', '**/dist/', '.tap/', '.turbo/', '.wombat/', 'data/'] },
  {
    files: ['**/*.ts'],
    extends: [js.configs.recommended, tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: { project: './tsconfig.json', tsconfigRootDir: import.meta.dirname },
      globals: globals.node,
    },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        // tap queues a subtest and reports its failure itself; awaiting t.test() is optional.
        { allowForKnownSafePromises: [{ from: 'package', name: 'PromiseWithSubtest', package: '@tapjs/core' }] },
      ],
      '@typescript-eslint/no-misused-promises': 'error',
      // Rejecting with the abort signal's reason or a caught error passes it on unchanged.
      '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingAny: true, allowThrowingUnknown: true }],
      // `const { a: _a, ...rest } = row` is how a key is left out of a copy.
      '@typescript-eslint/no-unused-vars': ['error', { ignoreRestSiblings: true }],
      // Off: async functions without await implement promise-returning interfaces (Fastify hooks and
      // handlers, stores, tap callbacks), and an async function rejects where a plain one would throw.
      '@typescript-eslint/require-await': 'off',
      // Off: the code writes `!` on indexed reads (`rows[0]!`) as if noUncheckedIndexedAccess were on,
      // to mark where a value is known to be there; without that option each of them is "unnecessary".
      '@typescript-eslint/no-unnecessary-type-assertion': 'off',
      // Off: its findings are String() of fields of untyped JSON (unknown narrowed to {}), rendered on
      // purpose; restrict-template-expressions still keeps objects out of template strings.
      '@typescript-eslint/no-base-to-string': 'off',
      // Off: row types write `Json | null` (Json is unknown) to mirror each column's nullability.
      '@typescript-eslint/no-redundant-type-constituents': 'off',
    },
  },
  {
    files: ['**/test/**/*.ts'],
    rules: {
      // Off in tests: they read untyped JSON (HTTP bodies, CLI output) and assert its shape.
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
    },
  },
  {
    // The dashboard: native ES modules served to the browser as they are (services/api/src/routes/ui.ts).
    files: ['services/api/ui/**/*.js'],
    extends: [js.configs.recommended],
    languageOptions: { sourceType: 'module', globals: globals.browser },
  },
  {
    files: ['*.js'],
    extends: [js.configs.recommended],
    languageOptions: { sourceType: 'module', globals: globals.node },
  },
);

// Flat ESLint config: typescript-eslint's recommended rules on hand-written code.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'generated/**', 'node_modules/**', 'coverage/**', 'fuzz/.build/**', 'fuzz/.work/**', '.bench-build-*/**', '.bench-base-*/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'warn',
    },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly' } },
  },
  {
    // the web page's browser modules (src/redfish/ui.ts serves them)
    files: ['ui/**/*.js'],
    languageOptions: {
      sourceType: 'module',
      globals: Object.fromEntries(
        ['window', 'document', 'location', 'navigator', 'sessionStorage', 'fetch', 'WebSocket', 'TextEncoder', 'TextDecoderStream',
          'AbortController', 'AbortSignal', 'MutationObserver', 'ResizeObserver', 'CSSStyleSheet', 'HTMLElement', 'HTMLInputElement',
          'HTMLSelectElement', 'HTMLButtonElement', 'HTMLDialogElement', 'setTimeout', 'clearTimeout', 'console', 'performance'].map((g) => [g, 'readonly']),
      ),
    },
  },
);

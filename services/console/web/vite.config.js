import { defineConfig } from 'vite'
import react from '@vitejs/plugin-react'

// The built files are committed (dist/) and embedded in the Go binary;
// `make console-assets` rebuilds them with `npm ci && npm run build`.
// React's API comes from Preact (preact/compat): a tenth of the bytes to
// parse, which keeps the first load under a second on a busy machine.
export default defineConfig({
  plugins: [react()],
  resolve: {
    alias: {
      'react-dom/client': 'preact/compat/client',
      'react-dom': 'preact/compat',
      'react/jsx-runtime': 'preact/jsx-runtime',
      'react/jsx-dev-runtime': 'preact/jsx-dev-runtime',
      react: 'preact/compat',
    },
  },
  build: { outDir: 'dist', emptyOutDir: true, sourcemap: false, assetsInlineLimit: 0 },
  server: { proxy: { '/api': 'http://127.0.0.1:8080' } },
})

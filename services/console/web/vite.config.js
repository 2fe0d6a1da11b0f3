import { defineConfig } from 'vite'
import react from '@vitejs/plugin-react'

// The built files are committed (dist/) and embedded in the Go binary;
// `make console-assets` rebuilds them with `npm ci && npm run build`.
export default defineConfig({
  plugins: [react()],
  build: { outDir: 'dist', emptyOutDir: true, sourcemap: false, assetsInlineLimit: 0 },
  server: { proxy: { '/api': 'http://127.0.0.1:8080' } },
})

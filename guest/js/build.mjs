// Build one ComponentizeJS guest: node build.mjs SOURCE.js WIT_DIR WORLD OUT.wasm
// (called by tests/e2e/test_js_guests.py, which caches the output by content).
//
// StarlingMonkey's `fetch` (wasi:http) is left out: these guests do not fetch,
// and a host without wasi:http (wasmtime-py's WASI, hence `capsock run`)
// could not link the import.
import { readFile, writeFile } from 'node:fs/promises';
import { componentize } from '@bytecodealliance/componentize-js';

const [source, witPath, worldName, out] = process.argv.slice(2);
if (!out) {
  console.error('usage: node build.mjs SOURCE.js WIT_DIR WORLD OUT.wasm');
  process.exit(2);
}
const { component } = await componentize({
  sourcePath: source,
  witPath,
  worldName,
  disableFeatures: ['http', 'fetch-event'],
});
await writeFile(out, component);

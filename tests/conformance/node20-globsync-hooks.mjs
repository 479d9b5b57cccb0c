// Module hooks for node20-globsync.mjs: `fs` and `node:fs` resolve to node20-globsync-fs.mjs
// (which itself imports the real module).
const shim = new URL('./node20-globsync-fs.mjs', import.meta.url).href;

export async function resolve(specifier, context, next) {
  if ((specifier === 'fs' || specifier === 'node:fs') && context.parentURL !== shim) {
    return { url: shim, shortCircuit: true };
  }
  return next(specifier, context);
}

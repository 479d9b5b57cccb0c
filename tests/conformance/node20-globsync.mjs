// `node --import ./node20-globsync.mjs`: Node 20 has no fs.globSync (Node 22 added it), and the
// suite imports it by name. This hook hands the suite a `fs` with a small globSync (only the
// `**` and `*` patterns the suite uses to read its results directory) and changes nothing else.
import { register } from 'node:module';

if (typeof (await import('node:fs')).globSync !== 'function') {
  register('./node20-globsync-hooks.mjs', import.meta.url);
}

// The real `fs` plus globSync(pattern, { cwd }) for Node 20 (see node20-globsync.mjs).
import fs from 'node:fs';
import path from 'node:path';

export * from 'node:fs';
export default fs;

/** `pattern` as a regular expression over `/`-separated relative paths. */
function toRegExp(pattern) {
  const parts = pattern.split('/').map((part) =>
    part === '**'
      ? '(?:[^/]+/)*'
      : part.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]') + '/',
  );
  return new RegExp('^' + parts.join('').replace(/\/$/, '') + '$');
}

export function globSync(pattern, options = {}) {
  const cwd = options.cwd ?? process.cwd();
  const re = toRegExp(pattern);
  const found = [];
  const walk = (dir) => {
    for (const entry of fs.readdirSync(path.join(cwd, dir), { withFileTypes: true })) {
      const rel = dir ? `${dir}/${entry.name}` : entry.name;
      if (entry.isDirectory()) walk(rel);
      if (re.test(rel)) found.push(rel);
    }
  };
  walk('');
  return found;
}

// Tests of the SVG loader in our build (svg.mjs): every SVG Element's sources can import must
// render as a React component. React refuses some root attributes in their SVG spelling (a
// style string above all, which throws and takes the view down with it: the "connection lost"
// bar crashed Element's room view this way), so all of them are drawn here with React's
// server renderer in a child process, the way the bundle draws them in the browser.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join, dirname } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';
import { svgPlugin, svgProps, styleObject } from '../svg.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const nm = join(here, '..', 'node_modules');

function svgs(dir) {
  const out = [];
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile() && e.name.endsWith('.svg')) out.push(join(e.parentPath ?? e.path, e.name));
  }
  return out;
}

test('root attributes become React props', () => {
  assert.deepEqual(styleObject('fill-rule:evenodd; clip-rule:evenodd;stroke-miterlimit:1.41421;'),
    { fillRule: 'evenodd', clipRule: 'evenodd', strokeMiterlimit: '1.41421' });
  assert.deepEqual(styleObject('-webkit-user-select: none; -ms-transform: none; --tint: #fff; ;bogus'),
    { WebkitUserSelect: 'none', msTransform: 'none', '--tint': '#fff' });
  assert.deepEqual(
    svgProps(`width="24" class="icon" xmlns="http://www.w3.org/2000/svg" xmlns:xlink="x" xml:space="preserve"
      fill-rule='evenodd' xlink:href="#a" aria-hidden="true" data-x="1" style="enable-background:new 0 0 24 24"`),
    { width: '24', className: 'icon', fillRule: 'evenodd', xlinkHref: '#a', 'aria-hidden': 'true', 'data-x': '1',
      style: { enableBackground: 'new 0 0 24 24' } });
  // Semicolons inside a data: URL or quotes do not end a declaration; comments are dropped.
  assert.deepEqual(styleObject('background:url("data:image/png;base64,AA=="); /* a;b:c */ font-family: "x;y"; -MS-Filter: none'),
    { background: 'url("data:image/png;base64,AA==")', fontFamily: '"x;y"', msFilter: 'none' });
  // Entities are decoded; an editor's namespaced attributes dropped; React's irregular names.
  assert.deepEqual(svgProps('tabindex="0" inkscape:label="L" sodipodi:docname="x.svg" aria-label="a &amp; b &#x41;&#66;"'),
    { tabIndex: '0', 'aria-label': 'a & b AB' });
});

test('every SVG Element can import renders as a React component', async () => {
  const files = [...svgs(join(nm, 'matrix-react-sdk', 'res')), ...svgs(join(nm, '@vector-im'))];
  assert.ok(files.length > 300, `only ${files.length} SVGs found: is node_modules installed?`);
  // warning.svg, drawn by the "connection lost" bar, has the style string that crashed Element.
  assert.ok(files.some((f) => f.endsWith('matrix-react-sdk/res/img/warning.svg')));

  const dir = mkdtempSync(join(tmpdir(), 'outpost-svg-test-'));
  try {
    const entry = [
      'import React from "react";',
      'import { renderToStaticMarkup } from "react-dom/server";',
      ...files.map((f, i) => `import { Icon as I${i} } from ${JSON.stringify(f)};`),
      `const icons = [${files.map((f, i) => `[${JSON.stringify(f)}, I${i}]`).join(',')}];`,
      'const failed = [];',
      // React reports unknown or misspelt props as console.error warnings, a style string by
      // throwing; both count.
      'const warnings = []; console.error = (...a) => warnings.push(a.map(String).join(" "));',
      'for (const [file, Icon] of icons) {',
      '  warnings.length = 0;',
      '  try {',
      '    const html = renderToStaticMarkup(React.createElement(Icon, { className: "t" }));',
      '    if (!html.startsWith("<svg")) failed.push([file, "rendered " + html.slice(0, 40)]);',
      '    if (warnings.length) failed.push([file, warnings[0].slice(0, 200)]);',
      '  } catch (e) { failed.push([file, String(e.message).slice(0, 200)]); }',
      '}',
      'console.log(JSON.stringify({ rendered: icons.length, failed }));',
    ].join('\n');
    const entryFile = join(dir, 'entry.mjs');
    writeFileSync(entryFile, entry);
    await esbuild.build({
      entryPoints: [entryFile], bundle: true, platform: 'node', format: 'esm', outdir: join(dir, 'out'),
      nodePaths: [nm], plugins: [svgPlugin()], logLevel: 'silent',
      // The development build of React names the failure instead of a minified error number.
      define: { 'process.env.NODE_ENV': '"development"' },
    });
    const r = spawnSync(process.execPath, [join(dir, 'out', 'entry.js')], { encoding: 'utf8', timeout: 120000 });
    assert.equal(r.status, 0, r.stderr);
    const got = JSON.parse(r.stdout.trim().split('\n').pop());
    assert.equal(got.rendered, files.length);
    assert.deepEqual(got.failed, []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

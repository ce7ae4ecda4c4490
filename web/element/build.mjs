// Builds Element Web for Outpost from the Element React SDK on npm, offline and
// reproducibly: esbuild for the TypeScript/React sources, PostCSS for the themes.
//
//   node build.mjs [outdir]      (default: dist/, ignored by git; `make web` runs this)
//
// Output: index.html, hashed bundles/ (JS, CSS, workers, fonts, images, the crypto wasm),
// hashed i18n/, media/ (call sounds, fetched by fixed name), each compressible file also as
// .gz and .br. The gateway serves it at / and generates /config.json itself.
import { createHash } from "node:crypto";
import { promises as fs, readFileSync, existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import zlib from "node:zlib";
import * as esbuild from "esbuild";
import postcss from "postcss";
import postcssScss from "postcss-scss";
import postcssImport from "postcss-import";
import postcssMixins from "postcss-mixins";
import postcssSimpleVars from "postcss-simple-vars";
import postcssNested from "postcss-nested";
import postcssEasings from "postcss-easings";
import postcssHexrgba from "postcss-hexrgba";
import postcssPresetEnv from "postcss-preset-env";
import { svgPlugin } from "./svg.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const out = path.resolve(process.argv[2] || path.join(here, "dist"));
const nm = path.join(here, "node_modules");
const sdk = path.join(nm, "matrix-react-sdk");
const pkg = (name) => JSON.parse(readFileSync(path.join(nm, name, "package.json"), "utf8"));
const VERSION = `outpost-${pkg("matrix-react-sdk").version}+js-sdk-${pkg("matrix-js-sdk").version}`;

// Languages shipped: Element's keys (what languageHandler asks for) -> the SDK's string files.
const LANGUAGES = { en: "en_EN", de: "de_DE", fr: "fr", ru: "ru", es: "es" };
// Themes: name Element asks for -> its entry stylesheet. light-custom/dark-custom are the
// bases for custom themes set in config.json.
const THEMES = {
    "light": "res/themes/light/css/light.pcss",
    "dark": "res/themes/dark/css/dark.pcss",
    "light-high-contrast": "res/themes/light-high-contrast/css/light-high-contrast.pcss",
    "light-custom": "res/themes/light-custom/css/light-custom.pcss",
    "dark-custom": "res/themes/dark-custom/css/dark-custom.pcss",
};

const hash = (buf) => createHash("sha256").update(buf).digest("base64url").slice(0, 12).replace(/[-_]/g, "x");
const bundles = path.join(out, "bundles");
const t0 = Date.now();
const log = (...a) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)}s]`, ...a);

async function writeHashed(dir, base, ext, data) {
    const name = `${base}.${hash(data)}${ext}`;
    await fs.mkdir(dir, { recursive: true });
    await fs.writeFile(path.join(dir, name), data);
    return name;
}

const common = {
    bundle: true,
    minify: true,
    legalComments: "none",
    target: ["chrome109", "firefox115", "safari16"],
    charset: "utf8",
    logLevel: "warning",
    define: {
        "process.env.NODE_ENV": '"production"',
        "process.env.VERSION": JSON.stringify(VERSION),
        "OUTPOST_ELEMENT_VERSION": JSON.stringify(VERSION),
        "process.env.MAX_EMOJI_VERSION": "undefined",
        "process.env": "{}",
        "global": "globalThis",
    },
    loader: {
        ".png": "file", ".gif": "file", ".jpg": "file", ".webp": "file",
        ".woff": "file", ".woff2": "file", ".ttf": "file",
        ".mp3": "file", ".ogg": "file", ".webm": "file", ".mp4": "file",
        ".wasm": "file",
    },
    assetNames: "[name].[hash]",
    // One copy of each package, however deep npm nested it.
    alias: { util: path.join(here, "src/shims/util.js") },
    inject: [path.join(here, "src/shims/buffer.js")],
};

// ---- Worker and worklet URLs: webpack's `new URL("./x.ts", import.meta.url)`. ----
async function buildWorker(entry) {
    const r = await esbuild.build({
        ...common,
        entryPoints: [entry],
        format: "iife",
        outdir: bundles,
        publicPath: "/bundles",
        write: false,
        plugins: [svgPlugin()],
    });
    let js;
    for (const f of r.outputFiles) {
        if (f.path.endsWith(".js")) js = f.contents;
        else await fs.writeFile(f.path, f.contents);
    }
    const base = path.basename(entry).replace(/\.(ts|js)$/, "");
    return "/bundles/" + (await writeHashed(bundles, base, ".js", js));
}

function workersPlugin(urls) {
    return {
        name: "workers",
        setup(b) {
            b.onLoad({ filter: /matrix-react-sdk\/src\/workers\/\w+Factory\.ts$/ }, async (args) => {
                let src = await fs.readFile(args.path, "utf8");
                src = src.replace(/new URL\(\s*(?:\/\*.*?\*\/\s*)?"\.\/(\w+\.worker)\.ts",\s*import\.meta\.url\s*\)/g, (all, name) => {
                    if (!urls[name]) throw new Error(`no worker built for ${name}`);
                    return `new URL(${JSON.stringify(urls[name])}, location.origin)`;
                });
                return { contents: src, loader: "ts" };
            });
            b.onResolve({ filter: /^\.\/RecorderWorklet$/ }, (args) => ({ path: "worklet", namespace: "worklet-url" }));
            b.onLoad({ filter: /.*/, namespace: "worklet-url" }, () => ({
                contents: `export default ${JSON.stringify(urls["RecorderWorklet"])};`,
                loader: "js",
            }));
        },
    };
}

// ---- Rust crypto: ship the wasm as a real .wasm file, streamed and compiled by the browser,
// instead of 9 MB of base64 inside JavaScript. ----
function cryptoWasmPlugin(wasmURL) {
    return {
        name: "crypto-wasm",
        setup(b) {
            b.onLoad({ filter: /matrix-sdk-crypto-wasm\/pkg\/index\.js$/ }, async (args) => {
                let src = await fs.readFile(args.path, "utf8");
                const before = src;
                src = src.replace(
                    /\.then\(\(\) => require\("\.\/matrix_sdk_crypto_wasm_bg\.wasm\.js"\)\)\s*\.then\(\(b64\) => WebAssembly\.instantiate\(unbase64\(b64\), imports\)\)/,
                    `.then(() => fetch(${JSON.stringify(wasmURL)}))
            .then((r) => { if (!r.ok) throw new Error("crypto wasm: HTTP " + r.status); return WebAssembly.instantiateStreaming(r, imports); })`,
                );
                src = src.replace(
                    /const bytes = unbase64\(require\("\.\/matrix_sdk_crypto_wasm_bg\.wasm\.js"\)\);/,
                    `throw new Error("matrix-sdk-crypto-wasm: call initAsync() first");`,
                );
                if (src === before || src.includes("matrix_sdk_crypto_wasm_bg.wasm.js")) {
                    throw new Error("crypto wasm loader changed; update build.mjs");
                }
                return { contents: src, loader: "js" };
            });
        },
    };
}

// ---- Small things webpack loaders did. ----
function miscPlugin(langJsonURL) {
    return {
        name: "misc",
        setup(b) {
            // webpack alias to the output dir: the URL of the language list.
            b.onResolve({ filter: /^\$webapp\/i18n\/languages\.json$/ }, () => ({ path: "languages", namespace: "webapp" }));
            b.onLoad({ filter: /.*/, namespace: "webapp" }, () => ({
                contents: `export default ${JSON.stringify(langJsonURL)};`,
                loader: "js",
            }));
            // opus-recorder's workers find their wasm beside themselves: copy the directory
            // under a versioned name.
            b.onResolve({ filter: /^opus-recorder\/dist\/\w+Worker\.min\.(js|wasm)$/ }, (args) => ({ path: args.path, namespace: "opus" }));
            b.onLoad({ filter: /.*/, namespace: "opus" }, async (args) => {
                const dir = `opus-recorder-${pkg("opus-recorder").version}`;
                const name = path.basename(args.path);
                await fs.mkdir(path.join(bundles, dir), { recursive: true });
                await fs.copyFile(path.join(nm, args.path), path.join(bundles, dir, name));
                return { contents: `export default ${JSON.stringify(`/bundles/${dir}/${name}`)};`, loader: "js" };
            });
            // raw-loader: a file's text.
            b.onResolve({ filter: /^!!raw-loader!/ }, (args) => {
                let p = path.resolve(args.resolveDir, args.path.replace(/^!!raw-loader!/, ""));
                if (!existsSync(p)) p = [".js", ".ts", ".css"].map((e) => p + e).find(existsSync);
                return { path: p, namespace: "raw" };
            });
            b.onLoad({ filter: /.*/, namespace: "raw" }, async (args) => ({
                contents: await fs.readFile(args.path, "utf8"),
                loader: "text",
            }));
        },
    };
}

// ---- CSS: the SDK's PostCSS dialect, then esbuild for url() assets and minification. ----
async function buildTheme(name, entry) {
    const file = path.join(sdk, entry);
    const res = await postcss([
        postcssImport({ path: [nm] }),
        postcssMixins(),
        postcssSimpleVars(),
        postcssNested(),
        postcssEasings(),
        postcssHexrgba(),
        postcssPresetEnv({ stage: 3, browsers: "chrome >= 109, firefox >= 115, safari >= 16" }),
    ]).process(await fs.readFile(file, "utf8"), { from: file, parser: postcssScss });
    for (const w of res.warnings()) if (!/is not supported|Unknown word/.test(w.text)) console.warn(`theme ${name}: ${w}`);
    const r = await esbuild.build({
        ...common,
        stdin: { contents: res.css, resolveDir: path.dirname(file), loader: "css", sourcefile: entry },
        loader: { ...common.loader, ".svg": "file" },
        outdir: bundles,
        publicPath: "/bundles",
        write: false,
    });
    let css;
    for (const f of r.outputFiles) {
        if (f.path.endsWith(".css")) css = f.contents;
        else await fs.writeFile(f.path, f.contents);
    }
    return "/bundles/" + (await writeHashed(bundles, `theme-${name}`, ".css", css));
}

async function buildI18n() {
    const dir = path.join(out, "i18n");
    const list = {};
    for (const [key, file] of Object.entries(LANGUAGES)) {
        const strings = JSON.parse(await fs.readFile(path.join(sdk, "src/i18n/strings", file + ".json"), "utf8"));
        const ours = path.join(here, "i18n", file + ".json");
        if (existsSync(ours)) deepMerge(strings, JSON.parse(await fs.readFile(ours, "utf8")));
        list[key] = await writeHashed(dir, file, ".json", Buffer.from(JSON.stringify(strings)));
    }
    return "/i18n/" + (await writeHashed(dir, "languages", ".json", Buffer.from(JSON.stringify(list))));
}

function deepMerge(a, b) {
    for (const [k, v] of Object.entries(b)) {
        if (v && typeof v === "object" && typeof a[k] === "object") deepMerge(a[k], v);
        else a[k] = v;
    }
}

async function precompress(dir) {
    const gzip = promisify(zlib.gzip);
    const brotli = promisify(zlib.brotliCompress);
    const files = [];
    for (const e of await fs.readdir(dir, { recursive: true, withFileTypes: true })) {
        if (e.isFile() && /\.(js|css|html|json|svg|wasm|txt|ttf|map)$/.test(e.name)) files.push(path.join(e.parentPath ?? e.path, e.name));
    }
    let raw = 0, gz = 0, br = 0;
    await Promise.all(files.map(async (f) => {
        const data = await fs.readFile(f);
        const [g, b] = await Promise.all([
            gzip(data, { level: 9 }),
            brotli(data, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 11, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: data.length } }),
        ]);
        raw += data.length;
        if (g.length < data.length) { await fs.writeFile(f + ".gz", g); gz += g.length; } else gz += data.length;
        if (b.length < data.length) { await fs.writeFile(f + ".br", b); br += b.length; } else br += data.length;
    }));
    return { raw, gz, br };
}

async function dirSize(dir) {
    let n = 0;
    for (const e of await fs.readdir(dir, { recursive: true, withFileTypes: true })) {
        if (e.isFile() && !/\.(gz|br)$/.test(e.name)) n += (await fs.stat(path.join(e.parentPath ?? e.path, e.name))).size;
    }
    return n;
}

async function main() {
    // Start from an empty directory, keeping only the placeholder that lets `go build`
    // embed the directory before anyone ran `make web`.
    await fs.mkdir(out, { recursive: true });
    for (const e of await fs.readdir(out)) if (e !== ".keep") await fs.rm(path.join(out, e), { recursive: true, force: true });
    await fs.mkdir(bundles, { recursive: true });

    const langJsonURL = await buildI18n();
    log("i18n", Object.keys(LANGUAGES).join(" "));

    const wasmB64 = readFileSync(path.join(nm, "@matrix-org/matrix-sdk-crypto-wasm/pkg/matrix_sdk_crypto_wasm_bg.wasm.js"), "utf8");
    const wasm = Buffer.from(/`([\s\S]*)`/.exec(wasmB64)[1].replace(/\s+/g, ""), "base64");
    if (wasm.readUInt32BE(0) !== 0x0061736d) throw new Error("crypto wasm: not a wasm module");
    const wasmURL = "/bundles/" + (await writeHashed(bundles, "matrix_sdk_crypto", ".wasm", wasm));

    const workerURLs = {};
    for (const w of ["playback.worker", "blurhash.worker", "indexeddb.worker"]) {
        workerURLs[w] = await buildWorker(path.join(sdk, "src/workers", w + ".ts"));
    }
    workerURLs.RecorderWorklet = await buildWorker(path.join(sdk, "src/audio/RecorderWorklet.ts"));
    log("workers");

    const themeURLs = {};
    for (const [name, entry] of Object.entries(THEMES)) themeURLs[name] = await buildTheme(name, entry);
    log("themes", Object.keys(THEMES).join(" "));

    const r = await esbuild.build({
        ...common,
        entryPoints: { index: path.join(here, "src/index.ts"), shell: path.join(here, "src/shell.css") },
        outdir: bundles,
        publicPath: "/bundles",
        format: "esm",
        splitting: true,
        entryNames: "[name].[hash]",
        chunkNames: "[name].[hash]",
        metafile: true,
        plugins: [svgPlugin(), workersPlugin(workerURLs), cryptoWasmPlugin(wasmURL), miscPlugin(langJsonURL)],
    });
    const outputs = r.metafile.outputs;
    const find = (pred) => {
        const k = Object.keys(outputs).find((o) => pred(o, outputs[o]));
        if (!k) throw new Error("output not found: " + JSON.stringify(Object.entries(outputs).map(([o, m]) => [o, m.entryPoint]).filter(([o]) => !o.includes("chunk")).slice(0, 20)));
        return "/bundles/" + path.basename(k);
    };
    const indexJS = find((o, m) => m.entryPoint?.endsWith("src/index.ts") && o.endsWith(".js"));
    const shellCSS = find((o, m) => m.entryPoint?.endsWith("src/shell.css") && o.endsWith(".css"));
    const initJS = find((o, m) => o.endsWith(".js") && m.entryPoint && path.resolve(m.entryPoint) === path.join(here, "src/init.tsx"));
    // CSS that JS imported (katex and friends) lands beside the JS chunks; link it too.
    const jsCSS = Object.keys(outputs).filter((o) => o.endsWith(".css") && !outputs[o].entryPoint?.endsWith("shell.css"));
    log("app", path.basename(indexJS));

    await fs.mkdir(path.join(out, "media"), { recursive: true });
    for (const f of await fs.readdir(path.join(sdk, "res/media"))) {
        await fs.copyFile(path.join(sdk, "res/media", f), path.join(out, "media", f));
    }
    const favicon = "/bundles/" + (await writeHashed(bundles, "favicon", ".svg", await fs.readFile(path.join(here, "src/favicon.svg"))));
    // The sign-in page's logo, named in config.json (which the box writes without knowing hashes).
    await fs.copyFile(path.join(here, "src/favicon.svg"), path.join(out, "logo.svg"));

    const themeLinks = Object.entries(themeURLs)
        .map(([n, u]) => `<link rel="stylesheet" href="${u}" data-mx-theme="${n}" disabled>`)
        .concat(jsCSS.map((o) => `<link rel="stylesheet" href="/bundles/${path.basename(o)}">`))
        .join("\n");
    let html = await fs.readFile(path.join(here, "index.html"), "utf8");
    html = html
        .replace("@FAVICON@", favicon)
        .replace("@SHELL_CSS@", shellCSS)
        .replace("@THEMES@", themeLinks)
        .replace("@INIT_JS@", initJS)
        .replace("@INDEX_JS@", indexJS);
    if (/@[A-Z_]+@/.test(html)) throw new Error("index.html: unreplaced placeholder");
    await fs.writeFile(path.join(out, "index.html"), html);
    await fs.writeFile(path.join(out, "version"), VERSION + "\n");

    // usercontent/: the sandboxed download frame Element loads by that fixed path.
    const uc = await esbuild.build({ ...common, entryPoints: [path.join(here, "src/usercontent/usercontent.ts")], format: "iife", outdir: bundles, write: false });
    const ucJS = "/bundles/" + (await writeHashed(bundles, "usercontent", ".js", uc.outputFiles[0].contents));
    await fs.mkdir(path.join(out, "usercontent"), { recursive: true });
    await fs.writeFile(path.join(out, "usercontent/index.html"),
        (await fs.readFile(path.join(here, "src/usercontent/index.html"), "utf8")).replace("@USERCONTENT_JS@", ucJS));

    const raw = await dirSize(out);
    const c = await precompress(out);
    // The gateway serves compressible files from their .br/.gz copies (and inflates the .gz
    // for the rare client that takes neither), so the raw copies need not be embedded.
    for (const e of await fs.readdir(out, { recursive: true, withFileTypes: true })) {
        const f = path.join(e.parentPath ?? e.path, e.name);
        if (e.isFile() && !/\.(gz|br)$/.test(e.name) && existsSync(f + ".gz")) await fs.rm(f);
    }
    const mb = (n) => (n / 1048576).toFixed(2) + " MiB";
    log(`done: ${out}`);
    log(`size: ${mb(raw)} raw; compressible part ${mb(c.raw)}, as gzip ${mb(c.gz)}, as brotli ${mb(c.br)}`);
}

main().catch((e) => {
    console.error(e);
    process.exit(1);
});

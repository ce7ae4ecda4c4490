// The esbuild side of webpack's @svgr loader, which Element's sources expect: importing an SVG
// gives `Icon` (a React component drawing it inline) and a default URL (the file, hashed).
//
// The root <svg> element's attributes become React props, so they must be in React's form:
// `class` → className, `fill-rule` → fillRule, `xlink:href` → xlinkHref, and `style` a mapping
// rather than a string. React throws on a string style (minified error #62), and the throw
// takes down the whole view drawing the icon: Element's "connection lost" bar draws
// res/img/warning.svg, whose root carries a style attribute, so losing the server once crashed
// the room view. The children are passed through as markup and need none of this.
import { promises as fs } from "node:fs";
import path from "node:path";

// Attribute names React spells differently from camel-cased SVG/HTML.
const irregular = { tabindex: "tabIndex", "panose-1": "panose1" };

// svgProps turns the root element's attribute text into React props.
export function svgProps(attrText) {
    const props = {};
    for (const a of attrText.matchAll(/([\w:.-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')/g)) {
        const name = a[1];
        const value = decodeEntities(a[2] ?? a[3]);
        if (name === "class") props.className = value;
        else if (name === "style") props.style = styleObject(value);
        else if (name.startsWith("xlink:")) props["xlink" + upperFirst(name.slice(6))] = value;
        // Namespace declarations and other namespaces' attributes (xml:space, an editor's
        // inkscape:label) mean nothing to React, which would warn about them.
        else if (name === "xmlns" || name.includes(":")) continue;
        else if (name.startsWith("data-") || name.startsWith("aria-")) props[name] = value;
        else props[irregular[name] ?? camel(name)] = value;
    }
    return props;
}

// decodeEntities resolves XML's predefined and numeric character references.
function decodeEntities(v) {
    const named = { lt: "<", gt: ">", amp: "&", quot: '"', apos: "'" };
    return v.replace(/&(#x[0-9a-f]+|#[0-9]+|lt|gt|amp|quot|apos);/gi, (m, e) =>
        e[0] !== "#" ? named[e.toLowerCase()] ?? m
            : String.fromCodePoint(e[1].toLowerCase() === "x" ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10)));
}

// styleObject parses a CSS declaration list ("fill-rule:evenodd; clip-rule:evenodd") into the
// mapping React wants. Semicolons inside quotes or parentheses (a data: URL) do not end a
// declaration; comments are dropped. Custom properties keep their names; vendor prefixes
// follow React's spelling (-webkit-x → WebkitX, -ms-x → msX).
export function styleObject(css) {
    const style = {};
    for (const decl of declarations(css.replace(/\/\*[\s\S]*?\*\//g, ""))) {
        const i = decl.indexOf(":");
        if (i < 0) continue;
        const prop = decl.slice(0, i).trim();
        const value = decl.slice(i + 1).trim();
        if (!prop || !value) continue;
        if (prop.startsWith("--")) style[prop] = value;
        else if (prop.toLowerCase().startsWith("-ms-")) style[camel(prop.slice(1).toLowerCase())] = value;
        else if (prop.startsWith("-")) style[upperFirst(camel(prop.slice(1).toLowerCase()))] = value;
        else style[camel(prop.toLowerCase())] = value;
    }
    return style;
}

// declarations splits CSS text at the semicolons outside quotes and parentheses.
function declarations(css) {
    const out = [];
    let depth = 0, quote = "", start = 0;
    for (let i = 0; i < css.length; i++) {
        const c = css[i];
        if (quote) {
            if (c === "\\") i++;
            else if (c === quote) quote = "";
        } else if (c === '"' || c === "'") quote = c;
        else if (c === "(") depth++;
        else if (c === ")") depth = Math.max(0, depth - 1);
        else if (c === ";" && depth === 0) {
            out.push(css.slice(start, i));
            start = i + 1;
        }
    }
    out.push(css.slice(start));
    return out;
}

function camel(s) {
    return s.replace(/[-:]([a-z])/g, (_, c) => c.toUpperCase());
}

function upperFirst(s) {
    return s.charAt(0).toUpperCase() + s.slice(1);
}

// moduleSource is the JavaScript an SVG file becomes.
export function moduleSource(svgText, svgPath) {
    const clean = svgText.replace(/<\?xml[^>]*>|<!--[\s\S]*?-->|<!DOCTYPE[^>]*>/g, "").trim();
    const m = /<svg\b([^>]*)>([\s\S]*)<\/svg>\s*$/.exec(clean);
    const props = m ? svgProps(m[1]) : {};
    const inner = m ? m[2] : "";
    return `
import React from "react";
import url from ${JSON.stringify(svgPath + "?url")};
const attrs = ${JSON.stringify(props)};
const inner = { __html: ${JSON.stringify(inner)} };
// Children would clash with the markup set below (React throws on both); icons take none.
export const Icon = React.forwardRef(function Icon({ children, ...props }, ref) {
  return React.createElement("svg", Object.assign({}, attrs, props, { ref, dangerouslySetInnerHTML: inner }));
});
export const ReactComponent = Icon;
export default url;`;
}

export function svgPlugin() {
    return {
        name: "svg",
        setup(b) {
            b.onLoad({ filter: /\.svg$/ }, async (args) => ({
                resolveDir: path.dirname(args.path),
                loader: "js",
                contents: moduleSource(await fs.readFile(args.path, "utf8"), args.path),
            }));
            b.onResolve({ filter: /\.svg\?url$/ }, (args) => ({ path: args.path.slice(0, -4), namespace: "svg-url" }));
            b.onLoad({ filter: /.*/, namespace: "svg-url" }, async (args) => ({
                contents: await fs.readFile(args.path),
                loader: "file",
                resolveDir: path.dirname(args.path),
            }));
        },
    };
}

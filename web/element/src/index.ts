// Outpost's host for the Element React SDK: the entry point the box serves at /.
//
// This file stays tiny and imports nothing from the SDK, so that a failure to load the app
// (a truncated download, a browser too old for the bundle) can still be shown to the person
// instead of a blank page. Everything else is imported lazily once the config is known.

function showFatal(title: string, detail: string): void {
    const root = document.getElementById("matrixchat");
    if (!root) return;
    root.textContent = "";
    const box = document.createElement("div");
    box.className = "outpost-fatal";
    const h = document.createElement("h1");
    h.textContent = title;
    const p = document.createElement("p");
    p.textContent = detail;
    const again = document.createElement("button");
    again.textContent = "Try again";
    again.addEventListener("click", () => window.location.reload());
    box.append(h, p, again);
    root.append(box);
}

function supported(): boolean {
    // What the SDK and its crypto need, checked before loading 10 MB of script.
    return (
        typeof WebAssembly === "object" &&
        typeof Promise.prototype.finally === "function" &&
        typeof Object.fromEntries === "function" &&
        typeof Array.prototype.at === "function" &&
        typeof structuredClone === "function" &&
        !!window.indexedDB &&
        !!window.crypto?.subtle
    );
}

async function start(): Promise<void> {
    if (!window.isSecureContext) {
        showFatal(
            "Open this page over HTTPS",
            "Encrypted chat needs a secure connection. Install this box's root certificate " +
                "(from the box's plain HTTP page) and open its https:// address.",
        );
        return;
    }
    if (!supported()) {
        showFatal(
            "This browser is too old",
            "Element needs a current Chrome, Chromium, Edge, Firefox or Safari. Update the browser and reload.",
        );
        return;
    }
    let init: typeof import("./init");
    try {
        init = await import("./init");
    } catch (e) {
        console.error(e);
        showFatal("Element could not load", "Part of the app did not download. Check the connection to the box and reload.");
        return;
    }
    await init.start();
}

start().catch((e) => {
    console.error(e);
    showFatal("Element could not start", String(e?.message ?? e));
});

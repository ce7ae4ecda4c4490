// Hash routing: Element keeps its screen in the URL fragment (#/room/!id, #/login, ...).
import type { QueryDict } from "matrix-js-sdk/src/utils";
import type MatrixChat from "matrix-react-sdk/src/components/structures/MatrixChat";

let chat: MatrixChat | null = null;
let lastHashSet: string | null = null;

export function parseQsFromFragment(location: Location): { location: string; params: QueryDict } {
    // The fragment looks like "#/room/!abc:box.lan?via=box.lan".
    const hash = location.hash.replace(/^#/, "");
    const q = hash.indexOf("?");
    const path = q >= 0 ? hash.slice(0, q) : hash;
    const params: QueryDict = {};
    if (q >= 0) {
        for (const [k, v] of new URLSearchParams(hash.slice(q + 1))) params[k] = v;
    }
    return { location: decodeURIComponent(path), params };
}

export function parseQs(location: Location): QueryDict {
    const params: QueryDict = {};
    for (const [k, v] of new URLSearchParams(location.search)) params[k] = v;
    return params;
}

export function getScreenFromLocation(location: Location): { screen: string; params: QueryDict } {
    const f = parseQsFromFragment(location);
    return { screen: f.location.substring(1), params: f.params };
}

export function onNewScreen(screen: string, replaceLast = false): void {
    const hash = "#/" + screen;
    lastHashSet = hash;
    if (
        screen.startsWith("room/") &&
        window.location.hash.includes("/$") === hash.includes("/$") &&
        window.location.hash.startsWith(hash)
    ) {
        replaceLast = true; // only query parameters were stripped
    }
    if (replaceLast) window.location.replace(hash);
    else window.location.assign(hash);
}

export function initRouting(matrixChat: () => MatrixChat | null): void {
    window.addEventListener("hashchange", () => {
        if (decodeURIComponent(window.location.hash) === lastHashSet) return;
        chat = matrixChat();
        if (!chat) return;
        const s = getScreenFromLocation(window.location);
        chat.showScreen(s.screen, s.params);
    });
}

// Element hands decrypted attachments to this page, loaded in a sandboxed iframe (opaque
// origin, scripts and downloads only), which offers them as a download link. Keeping the
// blob URL out of the app's own origin means a file cannot script the app.
window.addEventListener("message", (e: MessageEvent) => {
    if (e.source !== window.parent || !e.data?.blob) return;
    const d = e.data;
    const a = document.createElement("a");
    a.rel = d.rel ?? "noreferrer noopener";
    a.target = d.target ?? "_blank";
    a.download = d.download ?? "";
    if (d.style) a.setAttribute("style", d.style);
    a.style.fontFamily = "Inter, 'DejaVu Sans', sans-serif";
    a.href = URL.createObjectURL(d.blob);
    const icon = document.createElement("span");
    if (d.imgStyle) icon.setAttribute("style", d.imgStyle);
    a.append(icon, document.createTextNode(d.textContent ?? ""));
    document.body.setAttribute("style", "margin: 0; overflow: hidden");
    document.body.replaceChildren(a);
    if (d.auto) a.click();
});

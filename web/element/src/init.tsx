// Loads the config, language and theme, then renders Element's MatrixChat.
import "matrix-js-sdk/src/browser-index";
import React from "react";
import ReactDOM from "react-dom";
import { logger } from "matrix-js-sdk/src/logger";
import { AutoDiscovery } from "matrix-js-sdk/src/matrix";
import * as languageHandler from "matrix-react-sdk/src/languageHandler";
import SettingsStore from "matrix-react-sdk/src/settings/SettingsStore";
import PlatformPeg from "matrix-react-sdk/src/PlatformPeg";
import SdkConfig from "matrix-react-sdk/src/SdkConfig";
import { setTheme } from "matrix-react-sdk/src/theme";
import AutoDiscoveryUtils from "matrix-react-sdk/src/utils/AutoDiscoveryUtils";
import type { IConfigOptions } from "matrix-react-sdk/src/IConfigOptions";

import OutpostPlatform from "./platform";
import { getScreenFromLocation, initRouting, onNewScreen, parseQs, parseQsFromFragment } from "./routing";

// Element's MatrixChat writes some log lines through the rageshake logger. Outpost has no
// bug-report server, so logs stay in the browser console.
(window as any).mx_rage_logger = {
    bypassRageshake: (fn: "log" | "info" | "warn" | "error", ...args: unknown[]) => console[fn](...args),
    log: () => {},
};

async function loadLanguage(): Promise<void> {
    const pref = SettingsStore.getValue("language", null, /*excludeDefault=*/ true);
    const langs: string[] = [];
    if (pref) {
        langs.push(pref);
    } else {
        for (const l of languageHandler.getLanguagesFromBrowser()) {
            langs.push(...languageHandler.getNormalizedLanguageKeys(l));
        }
    }
    try {
        await languageHandler.setLanguage(langs);
        document.documentElement.setAttribute("lang", languageHandler.getCurrentLanguage());
    } catch (e) {
        logger.error("Unable to set language", e);
    }
}

async function validatedConfig(): Promise<IConfigOptions> {
    const config = SdkConfig.get();
    const wk = config.default_server_config;
    if (!wk) throw new Error("config.json has no default_server_config");
    // Validate the box's own address only: no .well-known lookups anywhere else.
    const discovery = await AutoDiscovery.fromDiscoveryConfig(wk);
    const validated = await AutoDiscoveryUtils.buildValidatedConfigFromDiscovery(
        wk["m.homeserver"]?.server_name,
        discovery,
        true,
    );
    validated.isDefault = true;
    SdkConfig.add({ validated_server_config: validated });
    return SdkConfig.get();
}

async function showError(title: string, detail: string): Promise<void> {
    const root = document.getElementById("matrixchat")!;
    ReactDOM.render(
        <div className="outpost-fatal">
            <h1>{title}</h1>
            <p>{detail}</p>
            <button onClick={() => window.location.reload()}>{languageHandler._t("action|retry")}</button>
        </div>,
        root,
    );
}

export async function start(): Promise<void> {
    PlatformPeg.set(new OutpostPlatform());
    try {
        const cfg = await PlatformPeg.get()!.getConfig();
        SdkConfig.put(cfg ?? {});
    } catch (e) {
        logger.error("config.json", e);
        await loadLanguage();
        await setTheme().catch(() => {});
        return showError("Element could not load its settings", "The box did not answer. Reload the page in a moment.");
    }
    await Promise.all([loadLanguage(), setTheme().catch((e) => logger.error("theme", e))]);

    let config: IConfigOptions;
    try {
        config = await validatedConfig();
    } catch (e) {
        logger.error("server config", e);
        return showError("The homeserver is not reachable", "The box's homeserver did not answer. Reload the page in a moment.");
    }

    const { default: MatrixChat } = await import("matrix-react-sdk/src/components/structures/MatrixChat");
    let chat: any = null;
    initRouting(() => chat);
    const platform = PlatformPeg.get()!;
    ReactDOM.render(
        <MatrixChat
            ref={(c: any) => {
                chat = c;
                (window as any).matrixChat = c;
            }}
            onNewScreen={onNewScreen}
            config={config}
            realQueryParams={parseQs(window.location)}
            startingFragmentQueryParams={parseQsFromFragment(window.location).params}
            enableGuest={false}
            onTokenLoginCompleted={() => {
                const url = new URL(window.location.href);
                url.searchParams.delete("loginToken");
                window.history.replaceState(null, "", url.href);
            }}
            initialScreenAfterLogin={getScreenFromLocation(window.location)}
            defaultDeviceDisplayName={config.default_device_display_name ?? platform.getDefaultDeviceDisplayName()}
        />,
        document.getElementById("matrixchat"),
    );
}

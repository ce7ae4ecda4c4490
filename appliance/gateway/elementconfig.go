package gateway

import (
	"net"
	"net/http"
)

// serveConfig answers /config.json: Element Web's settings, generated from the box's own
// state on every request so a change (federation, the address people use) needs no rebuild.
// Everything that would make Element talk to anything but this box is off.
func (s *staticTree) serveConfig(w http.ResponseWriter, r *http.Request) {
	st := s.state()
	if !st.SetupComplete {
		notFound(w, r)
		return
	}
	writeJSON(w, http.StatusOK, ElementConfig(st, baseURL(r)))
}

// ElementConfig is Element Web's config.json for a box reached at base (scheme://host[:port]).
func ElementConfig(st State, base string) map[string]any {
	host := base
	if i := len("https://"); len(base) > i && base[:i] == "https://" {
		host = base[i:]
	} else if i := len("http://"); len(base) > i && base[:i] == "http://" {
		host = base[i:]
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return map[string]any{
		"default_server_config": map[string]any{
			"m.homeserver": map[string]any{"base_url": base, "server_name": st.ServerName},
		},
		"brand":                           "Element",
		"disable_custom_urls":             true,
		"disable_guests":                  true,
		"disable_3pid_login":              true,
		"disable_login_language_selector": false,
		"default_federate":                st.Federation,
		"default_theme":                   "light",
		"room_directory":                  map[string]any{"servers": []string{st.ServerName}},
		"permalink_prefix":                base,
		"show_labs_settings":              false,
		"features":                        map[string]any{},
		"branding":                        map[string]any{"auth_header_logo_url": "/logo.svg", "auth_footer_links": []any{}},
		// Sign-in straight away: no welcome page with links to element.io.
		"embedded_pages": map[string]any{"login_for_welcome": true},
		// Help lives on the box.
		"help_url":            base + "/help.html",
		"help_encryption_url": base + "/help.html#encryption",
		// No integration manager, widgets, bots or terms from outside.
		"integrations_ui_url":        nil,
		"integrations_rest_url":      nil,
		"integrations_widgets_urls":  []string{},
		"terms_and_conditions_links": []any{},
		"privacy_policy_url":         nil,
		"bug_report_endpoint_url":    nil,
		"uisi_autorageshake_app":     nil,
		"posthog":                    nil,
		"sentry":                     nil,
		"map_style_url":              nil,
		"feedback":                   map[string]any{"existing_issues_url": nil, "new_issue_url": nil},
		"jitsi":                      map[string]any{"preferred_domain": host},
		"element_call":               map[string]any{"url": nil, "use_exclusively": false, "brand": "Element Call"},
		"voip":                       map[string]any{"obey_asserted_identity": false},
		"mobile_guide_toast":         false,
		"mobile_builds":              map[string]any{"ios": nil, "android": nil, "fdroid": nil},
		"desktop_builds":             map[string]any{"available": false, "logo": "", "url": ""},
		"fallbackICEServerAllowed":   false,
		"setting_defaults": map[string]any{
			"UIFeature.registration":           false,
			"UIFeature.passwordReset":          false,
			"UIFeature.deactivate":             false,
			"UIFeature.identityServer":         false,
			"UIFeature.thirdPartyId":           false,
			"UIFeature.widgets":                false,
			"UIFeature.Feedback":               false,
			"UIFeature.shareSocial":            false,
			"UIFeature.locationSharing":        false,
			"UIFeature.urlPreviews":            false,
			"UIFeature.advancedEncryption":     true,
			"fallbackICEServerAllowed":         false,
			"urlPreviewsEnabled":               false,
			"urlPreviewsEnabled_e2ee":          false,
			"showImages":                       true,
			"feature_video_rooms":              false,
			"feature_group_calls":              false,
			"feature_element_call_video_rooms": false,
		},
	}
}

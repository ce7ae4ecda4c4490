// Package homeserver runs the bundled Dendrite: it renders dendrite.yaml from the settings,
// owns the signing key, starts and supervises the stock dendrite binary on a unix socket, and
// talks to its admin API with the shared registration secret.
package homeserver

import (
	"encoding/json"
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"time"
)

// Config is everything dendrite.yaml is rendered from. It comes from the settings store on
// every start; nobody edits the generated file.
type Config struct {
	// Dir is the homeserver's directory (databases, media, JetStream, key, socket).
	Dir                      string
	ServerName               string
	Federation               bool
	RegistrationSharedSecret string
	TURN                     TURN
	// CacheSize is Dendrite's in-memory cache ceiling, in Dendrite's syntax ("64mb").
	CacheSize string
	// MaxUploadBytes caps a single media upload.
	MaxUploadBytes int64
	// WellKnownClient is the base URL clients should use; empty leaves discovery to the gateway.
	WellKnownClient string
}

// TURN is the coturn-style REST credential setup Dendrite hands to clients.
type TURN struct {
	URIs         []string
	SharedSecret string
	// UserLifetime must be set: an empty lifetime makes /voip/turnServer answer {}.
	UserLifetime time.Duration
}

// Paths of the homeserver's files under Dir.
func (c Config) ConfigPath() string   { return filepath.Join(c.Dir, "dendrite.yaml") }
func (c Config) SocketPath() string   { return filepath.Join(c.Dir, "dendrite.sock") }
func (c Config) KeyPath() string      { return filepath.Join(c.Dir, "matrix_key.pem") }
func (c Config) MediaPath() string    { return filepath.Join(c.Dir, "media") }
func (c Config) JetStreamDir() string { return filepath.Join(c.Dir, "jetstream") }
func (c Config) DBDir() string        { return filepath.Join(c.Dir, "db") }

// Components lists Dendrite's databases. Dendrite cannot share one SQLite file between
// components (global.database with file: does not work), so each gets its own.
var Components = []string{"userapi", "roomserver", "syncapi", "keyserver", "mediaapi", "federationapi", "relayapi", "mscs"}

// DatabasePath is the SQLite file of one component.
func (c Config) DatabasePath(component string) string {
	return filepath.Join(c.DBDir(), component+".db")
}

// dsn builds the connection string for a component. Dendrite drops pragmas after a literal
// '?' in a file: URI, but decodes the URI path, so an encoded %3F reaches the driver as the
// query separator. url.URL encodes it (and any odd character in the data dir) for us.
func (c Config) dsn(component string) string {
	path := c.DatabasePath(component)
	if !filepath.IsAbs(path) {
		// A relative directory: the config shipped inside a snapshot for a restore by
		// hand. Dendrite only decodes the %3F trick in absolute file: URIs, so the
		// pragmas are left out; WAL mode is recorded in the database file itself.
		return "file:" + filepath.ToSlash(path)
	}
	// WAL + synchronous=NORMAL: ~2x send throughput and ~3.5x lower /sync latency than
	// the rollback journal (measured, see DESIGN.md). A power cut can lose the last
	// transactions but never corrupts the database; snapshots give the recovery point.
	// _stmt_cache: our build of the SQLite driver keeps compiled statements per connection
	// instead of compiling the SQL again on every use (firmware/dendrite/patches/
	// modernc.org/sqlite); a fifth of dendrite's CPU under load went to that.
	// cache_size: each of the up to 10 connections per database keeps its own page cache
	// (2 MB by default); the pages are in the kernel's cache anyway.
	path += "?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=cache_size(" + strconv.Itoa(-pageCacheKiB) + ")&_stmt_cache=" + strconv.Itoa(stmtCacheSize)
	return (&url.URL{Scheme: "file", Path: path}).String()
}

type m = map[string]any

// idleConns is how many idle connections each component's SQLite database keeps (chosen with
// make bench; see docs/benchmarks.md).
const idleConns = 10

// stmtCacheSize is how many compiled statements each SQLite connection keeps (chosen with
// make bench; see docs/benchmarks.md).
const stmtCacheSize = 128

// pageCacheKiB is each SQLite connection's page cache. 256 KiB instead of SQLite's 2 MB
// saved ~8 MB of dendrite's peak RSS at 20 busy users for ~1% of its throughput (make
// bench; see docs/benchmarks.md).
const pageCacheKiB = 256

// Render returns dendrite.yaml. It is emitted as JSON, which is valid YAML: no YAML
// dependency, and no value (a server name, a secret) can ever break out of its string.
func Render(c Config) ([]byte, error) {
	if c.ServerName == "" {
		return nil, fmt.Errorf("homeserver: no server name configured")
	}
	if c.RegistrationSharedSecret == "" {
		return nil, fmt.Errorf("homeserver: no registration shared secret configured")
	}
	// Upstream Dendrite applies pool settings to PostgreSQL only; with SQLite database/sql
	// keeps 2 idle connections, so bursts of concurrent /sync handlers open fresh
	// connections that load the schema and prepare every statement again (a third of
	// dendrite's CPU at 20 busy users). Our build honours max_idle_conns and
	// conn_max_lifetime (-1: never expire) for SQLite
	// (firmware/dendrite/patches/github.com/element-hq/dendrite); max_open_conns stays unapplied.
	db := func(component string) m {
		return m{"connection_string": c.dsn(component), "max_open_conns": 10, "max_idle_conns": idleConns, "conn_max_lifetime": -1}
	}
	cache := c.CacheSize
	if cache == "" {
		cache = "64mb"
	}
	maxUpload := c.MaxUploadBytes
	if maxUpload == 0 {
		maxUpload = 100 << 20
	}
	turn := m{"turn_user_lifetime": "", "turn_uris": []string{}, "turn_shared_secret": ""}
	if len(c.TURN.URIs) > 0 && c.TURN.SharedSecret != "" {
		lifetime := c.TURN.UserLifetime
		if lifetime <= 0 {
			lifetime = time.Hour
		}
		turn = m{"turn_user_lifetime": lifetime.String(), "turn_uris": c.TURN.URIs, "turn_shared_secret": c.TURN.SharedSecret}
	}
	// Outbound federation may only reach other boxes on the LAN when switched on; never the
	// box itself or link-local/metadata addresses.
	denyNetworks := []string{"127.0.0.0/8", "::1/128", "169.254.0.0/16", "fe80::/10", "0.0.0.0/8"}
	doc := m{
		"version": 2,
		"global": m{
			"server_name":            c.ServerName,
			"private_key":            c.KeyPath(),
			"key_validity_period":    "168h0m0s",
			"cache":                  m{"max_size_estimated": cache, "max_age": "1h"},
			"well_known_server_name": "",
			"well_known_client_name": c.WellKnownClient,
			// No identity servers: they live on the internet.
			"trusted_third_party_id_servers": []string{},
			"disable_federation":             !c.Federation,
			"presence":                       m{"enable_inbound": c.Federation, "enable_outbound": c.Federation},
			"report_stats":                   m{"enabled": false},
			"server_notices": m{
				"enabled": true, "local_part": "_server", "display_name": "Outpost",
				"avatar_url": "", "room_name": "Outpost notices",
			},
			// File-backed JetStream: the in-memory store lost acknowledged messages on kill -9.
			"jetstream": m{"storage_path": c.JetStreamDir(), "topic_prefix": "Dendrite", "in_memory": false},
			"metrics":   m{"enabled": false},
			"dns_cache": m{"enabled": false},
		},
		"app_service_api": m{"config_files": []string{}},
		"client_api": m{
			// Registration stays closed; outpostd creates accounts with the shared secret
			// (registration_requires_token is not enforced by Dendrite).
			"registration_disabled":       true,
			"guests_disabled":             true,
			"registration_shared_secret":  c.RegistrationSharedSecret,
			"enable_registration_captcha": false,
			"turn":                        turn,
			"rate_limiting":               m{"enabled": true, "threshold": 10, "cooloff_ms": 500, "exempt_user_ids": []string{}},
		},
		"federation_api": m{
			"database":                db("federationapi"),
			"send_max_retries":        16,
			"disable_tls_validation":  false,
			"disable_http_keepalives": false,
			// No perspective servers: matrix.org is unreachable and must not be asked.
			"key_perspectives":    []string{},
			"prefer_direct_fetch": true,
			"deny_networks":       denyNetworks,
			"allow_networks":      []string{"0.0.0.0/0", "::/0"},
		},
		"key_server": m{"database": db("keyserver")},
		"media_api": m{
			"database":                 db("mediaapi"),
			"base_path":                c.MediaPath(),
			"max_file_size_bytes":      maxUpload,
			"dynamic_thumbnails":       false,
			"max_thumbnail_generators": 2,
			"thumbnail_sizes": []m{
				{"width": 32, "height": 32, "method": "crop"},
				{"width": 96, "height": 96, "method": "crop"},
				{"width": 320, "height": 240, "method": "scale"},
				{"width": 640, "height": 480, "method": "scale"},
				{"width": 800, "height": 600, "method": "scale"},
			},
		},
		"mscs":        m{"database": db("mscs"), "mscs": []string{}},
		"relay_api":   m{"database": db("relayapi")},
		"room_server": m{"database": db("roomserver")},
		"sync_api": m{
			"database":       db("syncapi"),
			"real_ip_header": "X-Real-IP",
			"search":         m{"enabled": false, "index_path": filepath.Join(c.Dir, "searchindex"), "language": "en"},
		},
		"user_api": m{
			"account_database": db("userapi"),
			"bcrypt_cost":      10,
			"auto_join_rooms":  []string{},
		},
		"tracing": m{"enabled": false},
		"logging": []m{{"type": "std", "level": "info"}},
	}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("homeserver: render config: %w", err)
	}
	header := []byte("# Generated by outpostd from its settings on every start. Do not edit: changes are overwritten.\n")
	return append(header, append(out, '\n')...), nil
}

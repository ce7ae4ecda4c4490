package homeserver

import (
	"database/sql"
	"net/url"
	"os"
	"strings"
	"testing"
)

// The pragmas in a rendered connection string reach the SQLite driver and take effect on a
// connection: what Dendrite does with it (decodes the path, hands the rest to the driver),
// then asks SQLite what it got.
func TestDSNPragmasTakeEffect(t *testing.T) {
	c := Config{Dir: t.TempDir(), ServerName: "box.lan", RegistrationSharedSecret: "x"}
	if err := os.MkdirAll(c.DBDir(), 0o700); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(c.dsn("syncapi"))
	if err != nil {
		t.Fatal(err)
	}
	// u.Path is decoded, so the encoded '?' is a query separator again, as in Dendrite.
	path, query, ok := strings.Cut(u.Path, "?")
	if !ok || path != c.DatabasePath("syncapi") {
		t.Fatalf("decoded DSN %q: want %s?pragmas", u.Path, c.DatabasePath("syncapi"))
	}
	// _stmt_cache is an option of our patched driver (firmware/dendrite/patches), which
	// this module does not build with; everything else must be understood as is.
	q, err := url.ParseQuery(query)
	if err != nil {
		t.Fatal(err)
	}
	if q.Get("_stmt_cache") == "" {
		t.Errorf("no statement cache in %q", query)
	}
	q.Del("_stmt_cache")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for pragma, want := range map[string]string{"journal_mode": "wal", "synchronous": "1", "cache_size": "-256"} {
		var got string
		if err := db.QueryRow("PRAGMA " + pragma).Scan(&got); err != nil {
			t.Fatalf("PRAGMA %s: %v", pragma, err)
		}
		if got != want {
			t.Errorf("PRAGMA %s = %s, want %s", pragma, got, want)
		}
	}
}

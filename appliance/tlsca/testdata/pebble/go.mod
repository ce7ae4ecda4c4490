// A module of its own so that pebble (the ACME test server the tlsca tests build and
// start) pins its dependencies here instead of in the appliance's go.mod.
module github.com/outpost-im/outpost/appliance/tlsca/testdata/pebble

go 1.26

tool github.com/letsencrypt/pebble/v2/cmd/pebble

require (
	github.com/go-jose/go-jose/v4 v4.1.3 // indirect
	github.com/letsencrypt/challtestsrv v1.3.2 // indirect
	github.com/letsencrypt/pebble/v2 v2.9.0 // indirect
	github.com/miekg/dns v1.1.62 // indirect
	golang.org/x/mod v0.24.0 // indirect
	golang.org/x/net v0.40.0 // indirect
	golang.org/x/sync v0.14.0 // indirect
	golang.org/x/sys v0.33.0 // indirect
	golang.org/x/tools v0.33.0 // indirect
)

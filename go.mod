// Why the big dependencies are here (exact versions; the proxy here refuses version lists):
//   modernc.org/sqlite            settings store and reads of Dendrite's SQLite files, pure Go
//   gomatrixserverlib             Matrix server-name grammar, the homeserver's own library
//   caddyserver/certmagic         certificate storage, issuance and renewal (box CA, ACME, upload)
//   pion/turn/v2                  the embedded TURN relay for calls
//   mattn/go-isatty, x/term       CLI prompts on a terminal, plain lines otherwise
//   x/time/rate                   per-allocation TURN bandwidth limits
//   filippo.io/age                snapshot encryption (X25519 only: Debian's age 1.1.1 must decrypt)
//   klauspost/compress/zstd       snapshot state archives (zstd, as Debian's zstd reads them)
//   cloudsoda/go-smb2, pkg/sftp,  snapshot targets: SMB shares, SFTP servers (host key pinned),
//   minio-go/v7, gowebdav           S3-compatible stores, WebDAV servers
//   x/crypto                      bcrypt (provisioned password hashes), XChaCha20-Poly1305
//                                 (sealed target credentials), ssh
//   rsc.io/qr                     the recovery key's QR code, drawn by the page itself
//   gokrazy/gokrazy               the appliance's init (pinned the same in firmware/*/builddir)
//   vishvananda/netlink, netns    static addresses, routes and the gateway check (same versions
//                                 as gokrazy's dhcp, which outpostd runs in DHCP mode)
//   beevik/ntp                    SNTP client for the optional LAN time servers (gokrazy's pin)
// Dendrite itself is pinned in firmware/dendrite/go.mod, a module of its own.
module github.com/outpost-im/outpost

go 1.26

require (
	filippo.io/age v1.2.1
	github.com/beevik/ntp v1.5.0
	github.com/caddyserver/certmagic v0.25.0
	github.com/cloudsoda/go-smb2 v0.0.0-20260803221621-0b399b9d036c
	github.com/gokrazy/gokrazy v0.0.0-20260703061218-a4a45a20149d
	github.com/klauspost/compress v1.18.0
	github.com/matrix-org/gomatrixserverlib v0.0.0-20250815065806-6697d93cbcba
	github.com/mattn/go-isatty v0.0.20
	github.com/mholt/acmez/v3 v3.1.3
	github.com/miekg/dns v1.1.68
	github.com/minio/minio-go/v7 v7.0.95
	github.com/pion/logging v0.2.2
	github.com/pion/turn/v2 v2.1.6
	github.com/pkg/sftp v1.13.9
	github.com/studio-b12/gowebdav v0.10.0
	github.com/vishvananda/netlink v1.3.1
	github.com/vishvananda/netns v0.0.5
	go.uber.org/zap v1.27.0
	golang.org/x/crypto v0.53.0
	golang.org/x/sys v0.46.0
	golang.org/x/term v0.44.0
	golang.org/x/time v0.12.0
	modernc.org/sqlite v1.40.1
	rsc.io/qr v0.2.0
)

require (
	github.com/caddyserver/zerossl v0.1.3 // indirect
	github.com/cloudsoda/sddl v0.0.0-20250224235906-926454e91efc // indirect
	github.com/dustin/go-humanize v1.0.1 // indirect
	github.com/geoffgarside/ber v1.1.0 // indirect
	github.com/go-ini/ini v1.67.0 // indirect
	github.com/goccy/go-json v0.10.5 // indirect
	github.com/gokrazy/internal v0.0.0-20260625065634-6994f9152c44 // indirect
	github.com/google/renameio/v2 v2.0.2 // indirect
	github.com/google/uuid v1.6.0 // indirect
	github.com/hashicorp/go-uuid v1.0.3 // indirect
	github.com/jcmturner/aescts/v2 v2.0.0 // indirect
	github.com/jcmturner/dnsutils/v2 v2.0.0 // indirect
	github.com/jcmturner/gofork v1.7.6 // indirect
	github.com/jcmturner/goidentity/v6 v6.0.1 // indirect
	github.com/jcmturner/gokrb5/v8 v8.4.4 // indirect
	github.com/jcmturner/rpc/v2 v2.0.3 // indirect
	github.com/kenshaw/evdev v0.1.0 // indirect
	github.com/klauspost/cpuid/v2 v2.3.0 // indirect
	github.com/kr/fs v0.1.0 // indirect
	github.com/libdns/libdns v1.1.1 // indirect
	github.com/mdlayher/watchdog v0.0.0-20221003142519-49be0df7b3b5 // indirect
	github.com/minio/crc64nvme v1.0.2 // indirect
	github.com/minio/md5-simd v1.1.2 // indirect
	github.com/ncruces/go-strftime v0.1.9 // indirect
	github.com/philhofer/fwd v1.2.0 // indirect
	github.com/pion/dtls/v2 v2.2.7 // indirect
	github.com/pion/randutil v0.1.0 // indirect
	github.com/pion/stun v0.6.1 // indirect
	github.com/pion/transport/v2 v2.2.1 // indirect
	github.com/remyoudompheng/bigfft v0.0.0-20230129092748-24d4a6f8daec // indirect
	github.com/rs/xid v1.6.0 // indirect
	github.com/tinylib/msgp v1.3.0 // indirect
	github.com/zeebo/blake3 v0.2.4 // indirect
	go.uber.org/multierr v1.11.0 // indirect
	go.uber.org/zap/exp v0.3.0 // indirect
	golang.org/x/exp v0.0.0-20250620022241-b7579e27df2b // indirect
	golang.org/x/mod v0.36.0 // indirect
	golang.org/x/net v0.56.0 // indirect
	golang.org/x/sync v0.21.0 // indirect
	golang.org/x/text v0.38.0 // indirect
	golang.org/x/tools v0.45.0 // indirect
	modernc.org/libc v1.66.10 // indirect
	modernc.org/mathutil v1.7.1 // indirect
	modernc.org/memory v1.11.0 // indirect
)

package target

import (
	"fmt"
	"strings"
)

// Kinds of target.
const (
	KindLocal  = "local"  // a directory: a USB drive's mount point, or any directory on a laptop
	KindSMB    = "smb"    // a Windows/Samba share
	KindSFTP   = "sftp"   // an SSH server, host key pinned
	KindS3     = "s3"     // an S3-compatible bucket
	KindWebDAV = "webdav" // a WebDAV server (Nextcloud, rclone, IIS...)
)

// Config is one configured target as stored (encrypted) in the settings database. Fields
// that a kind does not use stay empty.
type Config struct {
	Name string `json:"name"` // the admin's label, unique on the box
	Kind string `json:"kind"`

	// local
	Path string `json:"path,omitempty"`

	// smb, sftp: server address; s3: Host is unused (see Endpoint).
	Host string `json:"host,omitempty"`
	Port int    `json:"port,omitempty"` // 0 = the protocol's default

	User     string `json:"user,omitempty"`     // smb, sftp, webdav
	Password string `json:"password,omitempty"` // smb, sftp, webdav (secret)

	Share  string `json:"share,omitempty"`  // smb
	Domain string `json:"domain,omitempty"` // smb (optional)

	PrivateKey string `json:"private_key,omitempty"` // sftp: OpenSSH private key (secret), instead of Password
	HostKey    string `json:"host_key,omitempty"`    // sftp: the pinned host key, authorized_keys format

	Endpoint  string `json:"endpoint,omitempty"`   // s3: host:port
	Region    string `json:"region,omitempty"`     // s3 (optional)
	Bucket    string `json:"bucket,omitempty"`     // s3
	AccessKey string `json:"access_key,omitempty"` // s3
	SecretKey string `json:"secret_key,omitempty"` // s3 (secret)
	HTTP      bool   `json:"http,omitempty"`       // s3: plain HTTP instead of HTTPS (a LAN-only store)

	URL string `json:"url,omitempty"` // webdav: http(s)://host[:port]/path

	// CAPEM is extra trust for an HTTPS endpoint signed by a private CA (s3, webdav).
	CAPEM string `json:"ca_pem,omitempty"`

	// Dir is a subdirectory (or key prefix) inside the share, server, bucket or URL where
	// Outpost keeps its files; empty means the root.
	Dir string `json:"dir,omitempty"`
}

// Redacted returns c with every secret replaced, for display and logs.
func (c Config) Redacted() Config {
	for _, p := range []*string{&c.Password, &c.PrivateKey, &c.SecretKey} {
		if *p != "" {
			*p = "(set)"
		}
	}
	return c
}

// Validate checks what every kind needs, so a bad target is refused when it is added, not
// at 3 a.m. when the first snapshot runs. The error names the field and what is allowed.
func (c Config) Validate() error {
	if strings.TrimSpace(c.Name) == "" {
		return fmt.Errorf("target name is empty: give the target a short label, e.g. usb or nas")
	}
	if c.Port < 0 || c.Port > 65535 {
		return fmt.Errorf("port %d is out of range: use 1-65535, or leave it empty for the default", c.Port)
	}
	if c.Dir != "" {
		if err := CheckName(strings.Trim(c.Dir, "/")); err != nil {
			return fmt.Errorf("dir %q is not a plain relative path: use e.g. outpost/branch-1", c.Dir)
		}
	}
	need := func(field, value, hint string) error {
		if strings.TrimSpace(value) == "" {
			return fmt.Errorf("%s target needs %s: %s", c.Kind, field, hint)
		}
		return nil
	}
	var errs []error
	switch c.Kind {
	case KindLocal:
		errs = append(errs, need("path", c.Path, "the directory, e.g. /run/outpost/usb/<label>"))
		if c.Path != "" && !strings.HasPrefix(c.Path, "/") {
			errs = append(errs, fmt.Errorf("local target path %q is not absolute", c.Path))
		}
	case KindSMB:
		errs = append(errs, need("host", c.Host, "the file server's name or IP address"),
			need("share", c.Share, "the share name, e.g. backup"),
			need("user", c.User, "an account allowed to write to the share"))
	case KindSFTP:
		errs = append(errs, need("host", c.Host, "the SSH server's name or IP address"),
			need("user", c.User, "the SSH account"),
			need("host_key", c.HostKey, "the server's public host key (ssh-keyscan); it is pinned"))
		if c.Password == "" && c.PrivateKey == "" {
			errs = append(errs, fmt.Errorf("sftp target needs a password or a private key"))
		}
	case KindS3:
		errs = append(errs, need("endpoint", c.Endpoint, "host:port of the S3 service"),
			need("bucket", c.Bucket, "an existing bucket"),
			need("access_key", c.AccessKey, "the access key ID"),
			need("secret_key", c.SecretKey, "the secret access key"))
	case KindWebDAV:
		errs = append(errs, need("url", c.URL, "e.g. https://nas.example.lan/remote.php/dav/files/outpost"))
		if c.URL != "" && !strings.HasPrefix(c.URL, "http://") && !strings.HasPrefix(c.URL, "https://") {
			errs = append(errs, fmt.Errorf("webdav url %q must start with http:// or https://", c.URL))
		}
	default:
		return fmt.Errorf("unknown target kind %q: use one of local, smb, sftp, s3, webdav", c.Kind)
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

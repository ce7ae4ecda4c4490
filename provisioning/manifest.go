// Package provisioning is Outpost's zero-touch manifest: what headquarters decides for a box
// (server name, first admin, certificates, snapshot target and recovery key, network,
// branding) in one versioned JSON file, parsed strictly so that a mistake is one clear error
// naming the field, and optionally signed by a company key pinned in the image.
//
// The schema is documented in docs/provisioning.md and as JSON Schema in schema.json.
package provisioning

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"golang.org/x/crypto/bcrypt"

	"github.com/outpost-im/outpost/appliance/accounts"
	"github.com/outpost-im/outpost/appliance/netcfg"
	"github.com/outpost-im/outpost/appliance/setup"
	"github.com/outpost-im/outpost/appliance/snapshot"
	"github.com/outpost-im/outpost/appliance/target"
)

// Version is the manifest format this build reads.
const Version = 1

// MaxSize bounds a manifest file: anything larger is not a manifest.
const MaxSize = 256 << 10

// Manifest is one box's provisioning.
type Manifest struct {
	// OutpostManifest is the format version; it must be 1.
	OutpostManifest int    `json:"outpost_manifest"`
	ServerName      string `json:"server_name"`
	Federation      bool   `json:"federation,omitempty"`
	Admin           Admin  `json:"admin"`
	TLS             *TLS   `json:"tls,omitempty"`
	Snapshots       *Snaps `json:"snapshots,omitempty"`
	Network         *Net   `json:"network,omitempty"`
	Branding        *Brand `json:"branding,omitempty"`
}

// Admin is the first administrator. Exactly one of PasswordHash (bcrypt, as Dendrite stores
// it: the plaintext never leaves headquarters) and OneTimePassword (to be changed at the first
// sign-in) is set.
type Admin struct {
	Username        string `json:"username"`
	PasswordHash    string `json:"password_hash,omitempty"`
	OneTimePassword string `json:"one_time_password,omitempty"`
}

// TLS is the certificate source: "box-ca" (default) or "acme".
type TLS struct {
	Mode          string `json:"mode"`
	ACMEDirectory string `json:"acme_directory,omitempty"`
	ACMERootPEM   string `json:"acme_root_pem,omitempty"`
}

// Snaps configures snapshots: where, when, how long, and to whom they are encrypted.
type Snaps struct {
	Target            target.Config `json:"target"`
	Time              string        `json:"time,omitempty"`
	Retention         string        `json:"retention,omitempty"`
	RecoveryRecipient string        `json:"recovery_recipient"`
	EscrowRecipient   string        `json:"escrow_recipient,omitempty"`
}

// Net is the box's LAN configuration. DHCP unless Mode is "static".
// Net is the box's network: netcfg.Config, applied at first boot with the same safety net as
// a change in the console (the gateway must answer, or the box stays on DHCP).
type Net = netcfg.Config

// Brand is what people see: the name of the deployment and whom to call.
type Brand struct {
	Name           string `json:"name,omitempty"`
	SupportContact string `json:"support_contact,omitempty"`
}

// FieldError is a manifest mistake: Field is the JSON path ("admin.username").
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
}

var (
	unknownField = regexp.MustCompile(`json: unknown field "([^"]+)"`)
	hhmm         = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]$`)
)

// Parse reads and checks a manifest. Every error is a *FieldError naming the field and what
// is allowed.
func Parse(data []byte) (*Manifest, error) {
	if len(data) > MaxSize {
		return nil, fieldErr("(file)", "is %d bytes; a manifest is at most %d", len(data), MaxSize)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fieldErr("(file)", "is empty; start from `outpost provision new` or provisioning/examples/")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fieldErr("(file)", "has more after the manifest's closing brace; one JSON object per file")
	}
	if err := m.Check(); err != nil {
		return nil, err
	}
	return &m, nil
}

func decodeError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fieldErr("(file)", "is not valid JSON at byte %d: %v", syn.Offset, syn)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "(file)"
		}
		return fieldErr(field, "must be %s, not a JSON %s", jsonKind(typ.Type.Kind().String()), typ.Value)
	}
	if m := unknownField.FindStringSubmatch(err.Error()); m != nil {
		return fieldErr(m[1], "is not a manifest field (misspelt? see docs/provisioning.md)")
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fieldErr("(file)", "ends before the manifest does (truncated?)")
	}
	return fieldErr("(file)", "%v", err)
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "int", "int64":
		return "a whole number"
	case "slice":
		return "a list"
	case "struct", "ptr":
		return "an object"
	}
	return goKind
}

// Check validates the values; Parse calls it.
func (m *Manifest) Check() error {
	if m.OutpostManifest != Version {
		if m.OutpostManifest == 0 {
			return fieldErr("outpost_manifest", "is missing; set it to %d", Version)
		}
		return fieldErr("outpost_manifest", "is %d; this Outpost reads version %d (use a newer Outpost or `outpost provision new`)", m.OutpostManifest, Version)
	}
	if err := setup.ValidateServerName(m.ServerName); err != nil {
		return fieldErr("server_name", "%s", fieldMessage(err))
	}
	if err := accounts.ValidateUsername("admin.username", m.Admin.Username, m.ServerName); err != nil {
		return fieldErr("admin.username", "%s", fieldMessage(err))
	}
	switch {
	case m.Admin.PasswordHash != "" && m.Admin.OneTimePassword != "":
		return fieldErr("admin", "has both password_hash and one_time_password; give exactly one")
	case m.Admin.PasswordHash != "":
		if !strings.HasPrefix(m.Admin.PasswordHash, "$2") {
			return fieldErr("admin.password_hash", "must be a bcrypt hash ($2a$/$2b$/$2y$…, e.g. from `outpost provision new`); never put a plain password here")
		}
		cost, err := bcrypt.Cost([]byte(m.Admin.PasswordHash))
		if err != nil {
			return fieldErr("admin.password_hash", "is not a valid bcrypt hash: %v", err)
		}
		if cost < 10 {
			return fieldErr("admin.password_hash", "uses bcrypt cost %d; use at least 10", cost)
		}
	case m.Admin.OneTimePassword != "":
		if err := accounts.ValidatePassword("admin.one_time_password", m.Admin.OneTimePassword); err != nil {
			return fieldErr("admin.one_time_password", "%s", fieldMessage(err))
		}
	default:
		return fieldErr("admin", "needs password_hash (bcrypt) or one_time_password (changed at first sign-in)")
	}
	if t := m.TLS; t != nil {
		if t.Mode == "" {
			return fieldErr("tls.mode", "is missing: use box-ca or acme")
		}
		if err := setup.ValidateTLS(t.Mode, t.ACMEDirectory, t.ACMERootPEM); err != nil {
			var fe *accounts.FieldError
			if errors.As(err, &fe) {
				return fieldErr("tls."+strings.TrimPrefix(strings.Replace(fe.Field, "tls_mode", "mode", 1), "tls."), "%s", fe.Message)
			}
			return fieldErr("tls", "%v", err)
		}
	}
	if s := m.Snapshots; s != nil {
		if s.Target.Name == "" {
			s.Target.Name = "provisioned"
		}
		if err := s.Target.Validate(); err != nil {
			return fieldErr("snapshots.target", "%v", err)
		}
		if s.Time != "" && !hhmm.MatchString(s.Time) {
			return fieldErr("snapshots.time", "is %q; use HH:MM, 24-hour local time, e.g. 02:30", s.Time)
		}
		if s.Retention != "" {
			if _, err := snapshot.ParseRetention(s.Retention); err != nil {
				return fieldErr("snapshots.retention", "%v", err)
			}
		}
		if s.RecoveryRecipient == "" {
			return fieldErr("snapshots.recovery_recipient", "is missing: the public recovery key (age1…, from `age-keygen`); the private key never goes in a manifest")
		}
		if strings.HasPrefix(strings.ToUpper(strings.TrimSpace(s.RecoveryRecipient)), "AGE-SECRET-KEY") {
			return fieldErr("snapshots.recovery_recipient", "is a PRIVATE key: put only the public key (age1…, `age-keygen -y`) in a manifest, and keep the private key offline")
		}
		if _, err := snapshot.ParseRecipient(s.RecoveryRecipient); err != nil {
			return fieldErr("snapshots.recovery_recipient", "%v", err)
		}
		if s.EscrowRecipient != "" {
			if _, err := snapshot.ParseRecipient(s.EscrowRecipient); err != nil {
				return fieldErr("snapshots.escrow_recipient", "%v", err)
			}
		}
	}
	if n := m.Network; n != nil {
		if err := checkNet(n); err != nil {
			return err
		}
	}
	if b := m.Branding; b != nil {
		if len(b.Name) > 80 {
			return fieldErr("branding.name", "is %d characters; at most 80", len(b.Name))
		}
		if len(b.SupportContact) > 200 {
			return fieldErr("branding.support_contact", "is %d characters; at most 200", len(b.SupportContact))
		}
	}
	return nil
}

func checkNet(n *Net) error {
	err := n.Validate()
	var fe *netcfg.FieldError
	if errors.As(err, &fe) {
		field := "network"
		if fe.Field != "" {
			field += "." + fe.Field
		}
		return fieldErr(field, "%s", fe.Message)
	}
	return err
}

func fieldMessage(err error) string {
	var fe *accounts.FieldError
	if errors.As(err, &fe) {
		return fe.Message
	}
	return err.Error()
}

// Redacted returns a copy with every secret replaced: what is left on removable media after
// the manifest was applied, and what logs and the console show.
func (m Manifest) Redacted() Manifest {
	const gone = "(removed after provisioning)"
	if m.Admin.OneTimePassword != "" {
		m.Admin.OneTimePassword = gone
	}
	if m.Admin.PasswordHash != "" {
		m.Admin.PasswordHash = gone
	}
	if m.Snapshots != nil {
		s := *m.Snapshots
		s.Target = s.Target.Redacted()
		for _, p := range []*string{&s.Target.Password, &s.Target.PrivateKey, &s.Target.SecretKey} {
			if *p != "" {
				*p = gone
			}
		}
		m.Snapshots = &s
	}
	return m
}

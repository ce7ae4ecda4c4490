package tlsca

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"strings"
)

// MobileConfigContentType is the media type iOS and macOS Safari open as a configuration
// profile (served with it, the download goes straight to "Profile Downloaded").
const MobileConfigContentType = "application/x-apple-aspen-config"

// MobileConfig returns an unsigned iOS/macOS configuration profile that installs the box
// root. After installing it, iOS still requires switching on full trust under Settings >
// General > About > Certificate Trust Settings; the profile's description says so because
// that step is where users get stuck.
func (ca *CA) MobileConfig() []byte {
	return MobileConfig(ca.cert, ca.cert.Subject.CommonName)
}

// MobileConfig returns a configuration profile (plain XML plist, payload type
// com.apple.security.root) that installs root as a trusted root on Apple devices. The
// profile's identifiers and UUIDs are derived from the certificate, so downloading it again
// replaces the installed profile instead of adding a duplicate.
func MobileConfig(root *x509.Certificate, displayName string) []byte {
	sum := sha256.Sum256(root.Raw)
	idSuffix := fmt.Sprintf("%x", sum[:8])
	certUUID := uuidFrom(sum[:], 1)
	profileUUID := uuidFrom(sum[:], 2)
	if displayName == "" {
		displayName = "Outpost root CA"
	}
	desc := "Lets this device trust the secure (https) connection to your Outpost box. " +
		"After installing, turn on full trust in Settings > General > About > Certificate Trust Settings. " +
		"SHA-256 fingerprint: " + Fingerprint(root)

	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>PayloadContent</key>
	<array>
		<dict>
			<key>PayloadCertificateFileName</key>
			<string>outpost-root.cer</string>
			<key>PayloadContent</key>
			<data>
`)
	// Base64 in 52-character lines, as Apple's tools write it; plist readers accept any.
	enc := base64.StdEncoding.EncodeToString(root.Raw)
	for len(enc) > 0 {
		n := min(52, len(enc))
		b.WriteString("\t\t\t" + enc[:n] + "\n")
		enc = enc[n:]
	}
	b.WriteString("\t\t\t</data>\n")
	plistString(&b, 3, "PayloadDescription", "Adds the Outpost box root certificate")
	plistString(&b, 3, "PayloadDisplayName", displayName)
	plistString(&b, 3, "PayloadIdentifier", "im.outpost.root."+idSuffix+".cert")
	plistString(&b, 3, "PayloadType", "com.apple.security.root")
	plistString(&b, 3, "PayloadUUID", certUUID)
	b.WriteString("\t\t\t<key>PayloadVersion</key>\n\t\t\t<integer>1</integer>\n\t\t</dict>\n\t</array>\n")
	plistString(&b, 1, "PayloadDescription", desc)
	plistString(&b, 1, "PayloadDisplayName", displayName)
	plistString(&b, 1, "PayloadIdentifier", "im.outpost.root."+idSuffix)
	b.WriteString("\t<key>PayloadRemovalDisallowed</key>\n\t<false/>\n")
	plistString(&b, 1, "PayloadType", "Configuration")
	plistString(&b, 1, "PayloadUUID", profileUUID)
	b.WriteString("\t<key>PayloadVersion</key>\n\t<integer>1</integer>\n</dict>\n</plist>\n")
	return b.Bytes()
}

func plistString(b *bytes.Buffer, indent int, key, value string) {
	tabs := strings.Repeat("\t", indent)
	b.WriteString(tabs + "<key>" + key + "</key>\n" + tabs + "<string>")
	_ = xml.EscapeText(b, []byte(value)) // writes to a bytes.Buffer cannot fail
	b.WriteString("</string>\n")
}

// uuidFrom derives a stable RFC 4122 version-4-shaped UUID from a hash and a discriminator.
func uuidFrom(sum []byte, n byte) string {
	h := sha256.Sum256(append([]byte{n}, sum...))
	u := h[:16]
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%X-%X-%X-%X-%X", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

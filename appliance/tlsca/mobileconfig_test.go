package tlsca

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func TestMobileConfig(t *testing.T) {
	ca := newBoxCA(t)
	raw := ca.MobileConfig()
	if !bytes.HasPrefix(raw, []byte(`<?xml version="1.0" encoding="UTF-8"?>`)) {
		t.Fatalf("not an XML plist:\n%s", raw)
	}
	v, err := decodePlist(raw)
	if err != nil {
		t.Fatalf("%v\n%s", err, raw)
	}
	top, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("top level is %T", v)
	}
	uuidRE := regexp.MustCompile(`^[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}$`)
	if top["PayloadType"] != "Configuration" || top["PayloadVersion"] != 1 || top["PayloadRemovalDisallowed"] != false {
		t.Errorf("profile header: %v", top)
	}
	if !uuidRE.MatchString(fmt.Sprint(top["PayloadUUID"])) {
		t.Errorf("profile UUID %v", top["PayloadUUID"])
	}
	if !strings.Contains(fmt.Sprint(top["PayloadDescription"]), ca.Fingerprint()) {
		t.Error("description does not show the fingerprint")
	}
	content, ok := top["PayloadContent"].([]any)
	if !ok || len(content) != 1 {
		t.Fatalf("PayloadContent = %#v", top["PayloadContent"])
	}
	p := content[0].(map[string]any)
	if p["PayloadType"] != "com.apple.security.root" || p["PayloadVersion"] != 1 {
		t.Errorf("payload: %v", p)
	}
	if !uuidRE.MatchString(fmt.Sprint(p["PayloadUUID"])) || p["PayloadUUID"] == top["PayloadUUID"] {
		t.Errorf("payload UUID %v", p["PayloadUUID"])
	}
	if !bytes.Equal(p["PayloadContent"].([]byte), ca.Certificate().Raw) {
		t.Error("payload data is not the root certificate's DER")
	}
	if !strings.HasPrefix(fmt.Sprint(p["PayloadIdentifier"]), fmt.Sprint(top["PayloadIdentifier"])+".") {
		t.Errorf("identifiers %v / %v", top["PayloadIdentifier"], p["PayloadIdentifier"])
	}
	// Stable, so a second download replaces the installed profile.
	if !bytes.Equal(raw, ca.MobileConfig()) {
		t.Error("profile is not deterministic")
	}
	// Escaping: a display name with markup stays text.
	odd := MobileConfig(ca.Certificate(), `a<b>&"c"`)
	v, err = decodePlist(odd)
	if err != nil {
		t.Fatal(err)
	}
	if got := v.(map[string]any)["PayloadDisplayName"]; got != `a<b>&"c"` {
		t.Errorf("display name round-trip: %q", got)
	}
}

// decodePlist is a strict reader for the XML plist subset profiles use.
func decodePlist(data []byte) (any, error) {
	d := xml.NewDecoder(bytes.NewReader(data))
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, fmt.Errorf("no <plist>: %w", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if se.Name.Local != "plist" {
				return nil, fmt.Errorf("root element <%s>", se.Name.Local)
			}
			v, err := plistValue(d, nil)
			if err != nil {
				return nil, err
			}
			if _, err := plistValue(d, nil); err != errEnd {
				return nil, fmt.Errorf("trailing content after the top value: %v", err)
			}
			return v, nil
		}
	}
}

var errEnd = fmt.Errorf("end element")

// plistValue reads the next value; start is its already-read start element, if any.
func plistValue(d *xml.Decoder, start *xml.StartElement) (any, error) {
	if start == nil {
		for {
			tok, err := d.Token()
			if err == io.EOF {
				return nil, io.ErrUnexpectedEOF
			}
			if err != nil {
				return nil, err
			}
			switch tk := tok.(type) {
			case xml.StartElement:
				start = &tk
			case xml.EndElement:
				return nil, errEnd
			case xml.CharData:
				if strings.TrimSpace(string(tk)) != "" {
					return nil, fmt.Errorf("stray text %q", tk)
				}
				continue
			default:
				continue
			}
			break
		}
	}
	switch start.Name.Local {
	case "dict":
		m := map[string]any{}
		for {
			k, err := plistValue(d, nil)
			if err == errEnd {
				return m, nil
			}
			if err != nil {
				return nil, err
			}
			ks, ok := k.(plistKey)
			if !ok {
				return nil, fmt.Errorf("dict entry without <key>: %v", k)
			}
			v, err := plistValue(d, nil)
			if err != nil {
				return nil, fmt.Errorf("value of %q: %w", ks, err)
			}
			if _, dup := m[string(ks)]; dup {
				return nil, fmt.Errorf("duplicate key %q", ks)
			}
			m[string(ks)] = v
		}
	case "array":
		var a []any
		for {
			v, err := plistValue(d, nil)
			if err == errEnd {
				return a, nil
			}
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
	case "true", "false":
		if err := d.Skip(); err != nil {
			return nil, err
		}
		return start.Name.Local == "true", nil
	}
	var text string
	if err := d.DecodeElement(&text, start); err != nil {
		return nil, err
	}
	switch start.Name.Local {
	case "key":
		return plistKey(text), nil
	case "string":
		return text, nil
	case "integer":
		return strconv.Atoi(strings.TrimSpace(text))
	case "data":
		return base64.StdEncoding.DecodeString(strings.Join(strings.Fields(text), ""))
	}
	return nil, fmt.Errorf("unknown plist element <%s>", start.Name.Local)
}

type plistKey string

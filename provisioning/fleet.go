package provisioning

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strings"
	"text/template"
)

// Fleet renders one manifest per CSV row from a template: the template is a manifest whose
// string values may use {{.column}} for any CSV column ({{.site}}, {{.ip}}). Each result is
// parsed strictly; an error names the row and the field. It returns file name → manifest, the
// name taken from the "name" column (or "box-<row>").
func Fleet(tmpl []byte, rows io.Reader) (map[string][]byte, error) {
	t, err := template.New("manifest").Option("missingkey=error").Funcs(template.FuncMap{
		"json": func(s string) (string, error) { // escape a value inside a JSON string
			b, err := json.Marshal(s)
			return strings.Trim(string(b), `"`), err
		},
	}).Parse(string(tmpl))
	if err != nil {
		return nil, fmt.Errorf("template: %w", err)
	}
	r := csv.NewReader(rows)
	r.TrimLeadingSpace = true
	records, err := r.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("CSV: %w", err)
	}
	if len(records) < 2 {
		return nil, fmt.Errorf("CSV: needs a header row and at least one box")
	}
	header := records[0]
	for _, h := range header {
		if !columnName.MatchString(h) {
			return nil, fmt.Errorf("CSV: column %q: use letters, digits and _ only (it becomes {{.%s}})", h, h)
		}
	}
	out := map[string][]byte{}
	for i, rec := range records[1:] {
		row := i + 2 // as a spreadsheet numbers it
		vars := map[string]string{}
		for j, h := range header {
			// Values are JSON-escaped: a quote in a site name must not break the manifest.
			b, _ := json.Marshal(rec[j])
			vars[h] = strings.Trim(string(b), `"`)
		}
		var buf bytes.Buffer
		if err := t.Execute(&buf, vars); err != nil {
			return nil, fmt.Errorf("CSV row %d: %w", row, err)
		}
		if _, err := Parse(buf.Bytes()); err != nil {
			return nil, fmt.Errorf("CSV row %d: %w", row, err)
		}
		name := vars["name"]
		if name == "" {
			name = fmt.Sprintf("box-%d", row-1)
		}
		if !fileName.MatchString(name) {
			return nil, fmt.Errorf("CSV row %d: name %q: use letters, digits, . _ - only", row, name)
		}
		if _, dup := out[name+".json"]; dup {
			return nil, fmt.Errorf("CSV row %d: name %q appears twice", row, name)
		}
		out[name+".json"] = buf.Bytes()
	}
	return out, nil
}

var (
	columnName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	fileName   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
)

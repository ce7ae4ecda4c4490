// Package qrcode turns short secrets (the recovery key) into QR code modules that a page
// draws itself: no image endpoint, no script library, nothing cached by a browser.
package qrcode

import (
	"fmt"
	"strings"

	"rsc.io/qr"
)

// Rows encodes text with error correction level M (a printed sheet gets creased) and returns
// one string per row, '1' for a dark module.
func Rows(text string) ([]string, error) {
	code, err := qr.Encode(text, qr.M)
	if err != nil {
		return nil, fmt.Errorf("qrcode: %w", err)
	}
	rows := make([]string, code.Size)
	for y := range code.Size {
		var b strings.Builder
		for x := range code.Size {
			if code.Black(x, y) {
				b.WriteByte('1')
			} else {
				b.WriteByte('0')
			}
		}
		rows[y] = b.String()
	}
	return rows, nil
}

package qrcode

import "testing"

func TestRows(t *testing.T) {
	rows, err := Rows("AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ")
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) < 21 || len(rows[0]) != len(rows) {
		t.Fatalf("not a square QR code: %d rows of %d", len(rows), len(rows[0]))
	}
	// Every QR code has a finder pattern in its top-left corner: a dark 7x7 square ring.
	if rows[0][:7] != "1111111" || rows[6][:7] != "1111111" || rows[3][:7] != "1011101" {
		t.Fatalf("no finder pattern:\n%s\n%s\n%s", rows[0], rows[3], rows[6])
	}
}

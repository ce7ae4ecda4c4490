// Package claim guards first-boot setup with a one-time code. The code is shown only where
// someone with physical or root access can read it (the box's console, a 0600 file, the
// local CLI), so the first person on the LAN to open the setup page cannot take the box.
package claim

import (
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/outpost-im/outpost/appliance/atomicfile"
)

// FileName is the code's file in the data directory.
const FileName = "claim-code"

// Alphabet has no characters that are easily confused when read aloud or typed
// (no 0/O, 1/I/L, 5/S, 2/Z, 8/B).
const Alphabet = "ACDEFGHJKMNPQRTUVWXY34679"

// groups of groupLen characters: 12 characters from 25 is about 55 bits, far beyond what
// the rate limiter lets anyone try.
const (
	groups   = 3
	groupLen = 4
)

// Generate returns a fresh code such as "KCFM-9TQA-VX3R".
func Generate() (string, error) {
	n := groups * groupLen
	out := make([]byte, 0, n+groups-1)
	buf := make([]byte, 1)
	for len(out) < cap(out) {
		if len(out)%(groupLen+1) == groupLen {
			out = append(out, '-')
			continue
		}
		if _, err := rand.Read(buf); err != nil {
			return "", fmt.Errorf("claim: %w", err)
		}
		// Rejection sampling keeps every character equally likely.
		if int(buf[0]) >= 256/len(Alphabet)*len(Alphabet) {
			continue
		}
		out = append(out, Alphabet[int(buf[0])%len(Alphabet)])
	}
	return string(out), nil
}

// Normalize makes typing forgiving: case, spaces and dashes do not matter.
func Normalize(s string) string {
	s = strings.ToUpper(s)
	return strings.Map(func(r rune) rune {
		if r == '-' || r == ' ' || r == '\t' {
			return -1
		}
		return r
	}, s)
}

// Matches compares a typed code with the real one in constant time.
func Matches(typed, code string) bool {
	a, b := Normalize(typed), Normalize(code)
	return len(a) == len(b) && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// Ensure returns the box's current code, creating it (0600) on first use. The code stays
// the same across restarts until setup completes, so what the console showed stays valid.
func Ensure(dataDir string) (string, error) {
	path := filepath.Join(dataDir, FileName)
	b, err := os.ReadFile(path)
	if err == nil {
		if code := strings.TrimSpace(string(b)); len(Normalize(code)) == groups*groupLen {
			return code, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("claim: read code: %w", err)
	}
	code, err := Generate()
	if err != nil {
		return "", err
	}
	if err := atomicfile.Write(path, []byte(code+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("claim: store code: %w", err)
	}
	return code, nil
}

// Read returns the current code, or "" if there is none (setup completed).
func Read(dataDir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, FileName))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("claim: read code: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// Retire deletes the code once setup has completed: it must never work again.
func Retire(dataDir string) error {
	err := os.Remove(filepath.Join(dataDir, FileName))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("claim: retire code: %w", err)
	}
	return nil
}

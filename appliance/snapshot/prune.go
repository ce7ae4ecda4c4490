package snapshot

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/outpost-im/outpost/appliance/target"
)

// Retention says which snapshots to keep: the newest of each of the last Daily days,
// Weekly ISO weeks and Monthly months (UTC). The newest snapshot is always kept.
type Retention struct {
	Daily, Weekly, Monthly int
}

// DefaultRetention keeps a week of dailies, a month of weeklies and half a year of monthlies.
var DefaultRetention = Retention{Daily: 7, Weekly: 4, Monthly: 6}

func (r Retention) String() string {
	return fmt.Sprintf("%dd %dw %dm", r.Daily, r.Weekly, r.Monthly)
}

var retentionPart = regexp.MustCompile(`^([0-9]{1,4})([dwm])$`)

// ParseRetention reads "7d 4w 6m" (any order, comma or space separated; a missing part is 0).
func ParseRetention(s string) (Retention, error) {
	var r Retention
	fields := strings.FieldsFunc(s, func(c rune) bool { return c == ' ' || c == ',' })
	if len(fields) == 0 {
		return r, fmt.Errorf("retention is empty: use e.g. \"7d 4w 6m\" (7 daily, 4 weekly, 6 monthly)")
	}
	seen := map[string]bool{}
	for _, f := range fields {
		m := retentionPart.FindStringSubmatch(strings.ToLower(f))
		if m == nil || seen[m[2]] {
			return r, fmt.Errorf("retention %q: use e.g. \"7d 4w 6m\" (7 daily, 4 weekly, 6 monthly)", s)
		}
		seen[m[2]] = true
		n, _ := strconv.Atoi(m[1])
		switch m[2] {
		case "d":
			r.Daily = n
		case "w":
			r.Weekly = n
		case "m":
			r.Monthly = n
		}
	}
	if r.Daily+r.Weekly+r.Monthly == 0 {
		return r, fmt.Errorf("retention %q keeps nothing: keep at least one snapshot", s)
	}
	return r, nil
}

// keep returns the IDs (of complete snapshots, sorted oldest first) that r keeps.
func (r Retention) keep(ids []string) map[string]bool {
	kept := map[string]bool{}
	if len(ids) == 0 {
		return kept
	}
	kept[ids[len(ids)-1]] = true
	bucket := func(n int, key func(time.Time) string) {
		seen := map[string]bool{}
		for i := len(ids) - 1; i >= 0 && len(seen) < n; i-- {
			t, _ := ParseID(ids[i])
			k := key(t)
			if !seen[k] {
				seen[k] = true
				kept[ids[i]] = true // newest in its period
			}
		}
	}
	bucket(r.Daily, func(t time.Time) string { return t.Format("2006-01-02") })
	bucket(r.Weekly, func(t time.Time) string { y, w := t.ISOWeek(); return fmt.Sprintf("%d-%02d", y, w) })
	bucket(r.Monthly, func(t time.Time) string { return t.Format("2006-01") })
	return kept
}

// PruneResult is what Prune removed.
type PruneResult struct {
	Deleted        []string // snapshot IDs
	Kept           int
	ObjectsDeleted int
	BytesFreed     int64
}

// Prune deletes the snapshots r does not keep, then every media object no remaining snapshot
// references. Only complete snapshots count; incomplete ones are Cleanup's business.
func Prune(ctx context.Context, t target.Target, keys Keys, r Retention) (PruneResult, error) {
	var res PruneResult
	entries, err := List(ctx, t)
	if err != nil {
		return res, err
	}
	var ids []string
	for _, e := range entries {
		if e.Complete {
			ids = append(ids, e.ID)
		}
	}
	kept := r.keep(ids)
	pub := keys.Signing.Public().(ed25519.PublicKey)
	referenced := map[string]bool{}
	for _, id := range ids {
		if !kept[id] {
			continue
		}
		// Objects are deleted only when every kept manifest could be read: a manifest we
		// cannot read might reference anything.
		m, err := ReadManifest(ctx, t, id, keys.Box, pub)
		if err != nil {
			return res, fmt.Errorf("prune: %w", err)
		}
		for _, md := range m.Media {
			referenced[md.Object] = true
		}
	}
	res.Kept = len(kept)
	files, err := t.List(ctx, "")
	if err != nil {
		return res, err
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	for _, id := range ids {
		if kept[id] {
			continue
		}
		// Manifest first: from that moment the snapshot is incomplete, never half-deleted
		// but looking whole.
		if err := t.Delete(ctx, manifestPath(id)); err != nil {
			return res, fmt.Errorf("prune %s: %w", id, err)
		}
		for _, f := range files {
			if strings.HasPrefix(f.Name, snapshotsDir+"/"+id+"/") {
				if err := t.Delete(ctx, f.Name); err != nil {
					return res, fmt.Errorf("prune %s: %w", id, err)
				}
				res.BytesFreed += f.Size
			}
		}
		res.Deleted = append(res.Deleted, id)
	}
	for _, f := range files {
		if !strings.HasPrefix(f.Name, objectsDir+"/") || referenced[f.Name] || target.IsTemp(f.Name) {
			continue
		}
		if err := t.Delete(ctx, f.Name); err != nil {
			return res, fmt.Errorf("prune object: %w", err)
		}
		res.ObjectsDeleted++
		res.BytesFreed += f.Size
	}
	return res, nil
}

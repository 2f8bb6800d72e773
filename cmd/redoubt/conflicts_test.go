package main

import (
	"strings"
	"testing"
	"time"

	"github.com/redoubt-io/redoubt/internal/admin"
)

// TestPrintConflicts: each concurrent version of a key on a line of its
// own, the current one marked, a delete marker said as such.
func TestPrintConflicts(t *testing.T) {
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	var b strings.Builder
	printConflicts(&b, []admin.ConflictKey{{Key: "cart", Versions: []admin.ConflictVersion{
		{VersionID: "v2", Current: true, Size: 5, ETag: `"e2"`, Modified: at},
		{VersionID: "v1", DeleteMarker: true, Modified: at},
	}}}, true)
	want := `KEY   VERSION  CURRENT  MODIFIED              SIZE             ETAG
cart  v2       yes      2026-12-07T10:00:00Z  5                "e2"
cart  v1                2026-12-07T10:00:00Z  (delete marker)  
`
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}
}

package arch

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/redoubt-io/redoubt/"

// rank orders the internal packages: a package may import only packages of
// a lower rank. Pure packages are at the bottom, front ends near the top.
var rank = map[string]int{
	"internal/checksum":        0,
	"internal/hlc":             0,
	"internal/clock":           0,
	"internal/placement":       0,
	"internal/erasure":         0,
	"internal/vfs":             0,
	"internal/testlog":         0,
	"internal/lincheck":        0,
	"internal/layout":          1,
	"internal/vset":            1,
	"internal/merkle":          0,
	"internal/records":         2,
	"internal/store":           1,
	"internal/meta":            1,
	"internal/transport":       1,
	"internal/membership":      1,
	"internal/shardrpc":        2,
	"internal/raftmeta":        2,
	"internal/meta/metatest":   2,
	"internal/blocks":          3,
	"internal/objects":         4,
	"internal/s3api/sigv4":     5,
	"internal/admin":           5,
	"internal/bench":           5,
	"internal/lincheck/s3load": 5,
	"internal/s3api":           6,
	"internal/cluster":         6,
	"internal/sites":           6,
	"internal/node":            7,
	"internal/clustersim":      7,
	"internal/arch":            8,
}

// pure packages do no I/O and use no global randomness: effects come in
// through their callers.
var pure = []string{"internal/checksum", "internal/hlc", "internal/placement", "internal/erasure", "internal/layout", "internal/vset", "internal/merkle"}

var effects = []string{"os", "net", "net/http", "math/rand", "math/rand/v2", "crypto/rand"}

func TestLayers(t *testing.T) {
	root := filepath.Join("..", "..")
	err := filepath.WalkDir(filepath.Join(root, "internal"), func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		pkg := filepath.ToSlash(rel)
		if strings.Contains(pkg, "/testdata") {
			return nil
		}
		r, ok := rank[pkg]
		if !ok {
			t.Errorf("package %s has no rank in the layering table; add it", pkg)
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if dep, ok := strings.CutPrefix(p, module); ok {
				dr, known := rank[dep]
				if !known || dr >= r {
					t.Errorf("%s imports %s: a layer may import only layers below it", path, dep)
				}
			}
			if slices.Contains(pure, pkg) && slices.Contains(effects, p) {
				t.Errorf("%s is pure but imports %s", path, p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

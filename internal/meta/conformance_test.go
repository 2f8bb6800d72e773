package meta_test

import (
	"log/slog"
	"testing"

	"github.com/redoubt-io/redoubt/internal/meta"
	"github.com/redoubt-io/redoubt/internal/meta/metatest"
	"github.com/redoubt-io/redoubt/internal/testlog"
	"github.com/redoubt-io/redoubt/internal/vfs"
)

// localCtor returns stores backed by Local with the given number of
// replicas, closed when their test ends; edit, if any, changes their
// configuration.
func localCtor(replicas int, edit ...func(*meta.LocalConfig)) func(t *testing.T) meta.Store {
	return func(t *testing.T) meta.Store {
		var dirs []string
		for range replicas {
			dirs = append(dirs, t.TempDir())
		}
		cfg := meta.DefaultLocalConfig(dirs...)
		for _, f := range edit {
			f(&cfg)
		}
		cfg.Logger = slog.New(slog.NewTextHandler(testlog.Writer(t), &slog.HandlerOptions{Level: slog.LevelInfo}))
		l, err := meta.OpenLocal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := l.Close(); err != nil {
				t.Error(err)
			}
		})
		return l
	}
}

func TestConformanceMem(t *testing.T) {
	metatest.Run(t, func(*testing.T) meta.Store { return meta.NewMem() })
}

func TestConformanceLocal1(t *testing.T) { metatest.Run(t, localCtor(1)) }
func TestConformanceLocal3(t *testing.T) { metatest.Run(t, localCtor(3)) }

// Local on in-memory drives (meta.PebbleFS over a vfs.Mem) keeps the
// contract too.
func TestConformanceLocalMem(t *testing.T) {
	metatest.Run(t, func(t *testing.T) meta.Store {
		mem := vfs.NewMem(vfs.MemConfig{})
		cfg := meta.DefaultLocalConfig("/disks/0/meta", "/disks/1/meta")
		cfg.FS = mem
		cfg.Logger = slog.New(slog.NewTextHandler(testlog.Writer(t), &slog.HandlerOptions{Level: slog.LevelInfo}))
		l, err := meta.OpenLocal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := l.Close(); err != nil {
				t.Error(err)
			}
		})
		return l
	})
}

// Local with its presence filter covering every key keeps the contract.
func TestConformanceLocalFiltered(t *testing.T) {
	metatest.Run(t, localCtor(1, func(c *meta.LocalConfig) { c.FilterPrefixes = [][]byte{{}} }))
}

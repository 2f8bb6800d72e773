package vfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"pgregory.net/rapid"
)

// TestMemMatchesOS runs random sequences of the calls the storage layer
// makes against Mem and against the operating system in a temporary
// directory, and requires the same answers: the same errors (by errno),
// the same data, the same listings, and the same tree at the end. A
// failure prints the operations; rapid prints the seed and replays it
// with -rapid.seed.
func TestMemMatchesOS(t *testing.T) {
	rapid.Check(t, memMatchesOS)
}

func FuzzMemMatchesOS(f *testing.F) {
	f.Fuzz(rapid.MakeFuzz(memMatchesOS))
}

// The open flags the storage layer uses, and the access modes around them.
var testFlags = []int{
	os.O_RDONLY,
	os.O_RDWR,
	os.O_WRONLY | os.O_CREATE | os.O_TRUNC,
	os.O_WRONLY | os.O_CREATE | os.O_EXCL,
	os.O_RDWR | os.O_CREATE,
	os.O_WRONLY | os.O_CREATE | os.O_APPEND,
	os.O_RDWR | os.O_CREATE | os.O_APPEND,
	os.O_WRONLY | os.O_CREATE | os.O_SYNC,
}

// twin is a system under test: a file system and the root its paths
// hang from.
type twin struct {
	fs    FS
	root  string
	files []File // by handle number; nil where the open failed
}

func (w *twin) p(rel string) string { return w.root + "/" + rel }

func memMatchesOS(t *rapid.T) {
	dir, err := os.MkdirTemp("", "memos")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	real := &twin{fs: OS(), root: dir}
	mem := &twin{fs: NewMem(MemConfig{}), root: "/r"}
	if err := mem.fs.Mkdir(mem.root, 0o755); err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, tw := range []*twin{real, mem} {
			for _, f := range tw.files {
				if f != nil {
					f.Close()
				}
			}
		}
	}()

	elem := rapid.SampledFrom([]string{"a", "b", "c"})
	relPath := rapid.Custom(func(t *rapid.T) string {
		n := rapid.IntRange(1, 3).Draw(t, "depth")
		parts := make([]string, n)
		for i := range parts {
			parts[i] = elem.Draw(t, "elem")
		}
		return strings.Join(parts, "/")
	})
	data := rapid.SliceOfN(rapid.Byte(), 0, 40)
	handle := func(t *rapid.T) int {
		if len(real.files) == 0 {
			return -1 // not a skip: a fuzzer's input may draw nothing else
		}
		return rapid.IntRange(0, len(real.files)-1).Draw(t, "handle")
	}

	// Each operation runs on both twins and describes its outcome.
	ops := map[string]func(t *rapid.T) func(w *twin) string{
		"mkdir": func(t *rapid.T) func(w *twin) string {
			p := relPath.Draw(t, "path")
			return func(w *twin) string { return outcome(w.fs.Mkdir(w.p(p), 0o755)) }
		},
		"mkdirall": func(t *rapid.T) func(w *twin) string {
			p := relPath.Draw(t, "path")
			return func(w *twin) string { return outcome(w.fs.MkdirAll(w.p(p), 0o755)) }
		},
		"remove": func(t *rapid.T) func(w *twin) string {
			p := relPath.Draw(t, "path")
			return func(w *twin) string { return outcome(w.fs.Remove(w.p(p))) }
		},
		"removeall": func(t *rapid.T) func(w *twin) string {
			p := relPath.Draw(t, "path")
			return func(w *twin) string { return outcome(w.fs.RemoveAll(w.p(p))) }
		},
		"rename": func(t *rapid.T) func(w *twin) string {
			o, n := relPath.Draw(t, "old"), relPath.Draw(t, "new")
			return func(w *twin) string { return outcome(w.fs.Rename(w.p(o), w.p(n))) }
		},
		"stat": func(t *rapid.T) func(w *twin) string {
			p := relPath.Draw(t, "path")
			return func(w *twin) string { return describeInfo(w.fs.Stat(w.p(p))) }
		},
		"readdir": func(t *rapid.T) func(w *twin) string {
			p := relPath.Draw(t, "path")
			return func(w *twin) string {
				es, err := w.fs.ReadDir(w.p(p))
				if err != nil {
					return outcome(err)
				}
				var b strings.Builder
				for _, e := range es {
					fmt.Fprintf(&b, "%s:%v ", e.Name(), e.IsDir())
				}
				return b.String()
			}
		},
		"readfile": func(t *rapid.T) func(w *twin) string {
			p := relPath.Draw(t, "path")
			return func(w *twin) string {
				b, err := ReadFile(w.fs, w.p(p))
				return fmt.Sprintf("%q %s", b, outcome(err))
			}
		},
		"writefile": func(t *rapid.T) func(w *twin) string {
			p, d := relPath.Draw(t, "path"), data.Draw(t, "data")
			return func(w *twin) string { return outcome(WriteFile(w.fs, w.p(p), d, 0o644)) }
		},
		"syncdir": func(t *rapid.T) func(w *twin) string {
			p := relPath.Draw(t, "path")
			return func(w *twin) string { return outcome(w.fs.SyncDir(w.p(p))) }
		},
		"open": func(t *rapid.T) func(w *twin) string {
			p, flag := relPath.Draw(t, "path"), rapid.SampledFrom(testFlags).Draw(t, "flag")
			return func(w *twin) string {
				f, err := w.fs.OpenFile(w.p(p), flag, 0o644)
				w.files = append(w.files, f)
				return outcome(err)
			}
		},
		"write": func(t *rapid.T) func(w *twin) string {
			h, d := handle(t), data.Draw(t, "data")
			return onFile(h, func(f File) string { return count(f.Write(d)) })
		},
		"writeat": func(t *rapid.T) func(w *twin) string {
			h, d, off := handle(t), data.Draw(t, "data"), rapid.Int64Range(0, 60).Draw(t, "off")
			return onFile(h, func(f File) string { return count(f.WriteAt(d, off)) })
		},
		"read": func(t *rapid.T) func(w *twin) string {
			h, n := handle(t), rapid.IntRange(0, 50).Draw(t, "n")
			return onFile(h, func(f File) string {
				b := make([]byte, n)
				k, err := f.Read(b)
				return fmt.Sprintf("%q %s", b[:k], outcome(err))
			})
		},
		"readat": func(t *rapid.T) func(w *twin) string {
			h, n, off := handle(t), rapid.IntRange(0, 50).Draw(t, "n"), rapid.Int64Range(0, 60).Draw(t, "off")
			return onFile(h, func(f File) string {
				b := make([]byte, n)
				k, err := f.ReadAt(b, off)
				return fmt.Sprintf("%q %s", b[:k], outcome(err))
			})
		},
		"sync": func(t *rapid.T) func(w *twin) string {
			return onFile(handle(t), func(f File) string { return outcome(f.Sync()) })
		},
		"fstat": func(t *rapid.T) func(w *twin) string {
			return onFile(handle(t), func(f File) string { return describeInfo(f.Stat()) })
		},
		"close": func(t *rapid.T) func(w *twin) string {
			return onFile(handle(t), func(f File) string { return outcome(f.Close()) })
		},
	}
	actions := map[string]func(*rapid.T){
		// After every action, the two trees are the same.
		"": func(t *rapid.T) {
			if want, got := dump(t, real.fs, real.root), dump(t, mem.fs, mem.root); want != got {
				t.Fatalf("trees differ:\nos:\n%s\nMem:\n%s", want, got)
			}
		},
	}
	for name, op := range ops {
		actions[name] = func(t *rapid.T) {
			run := op(t)
			if want, got := run(real), run(mem); want != got {
				t.Fatalf("%s: os says %s, Mem says %s", name, want, got)
			}
		}
	}
	t.Repeat(actions)
}

func onFile(h int, fn func(File) string) func(w *twin) string {
	return func(w *twin) string {
		if h < 0 {
			return "no file ever opened"
		}
		f := w.files[h]
		if f == nil {
			return "never opened"
		}
		return fn(f)
	}
}

// outcome describes an error by what a caller may test: its errno, or
// whether it is io.EOF or os.ErrClosed.
func outcome(err error) string {
	var errno syscall.Errno
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, io.EOF):
		return "EOF"
	case errors.Is(err, os.ErrClosed):
		return "closed"
	case errors.As(err, &errno):
		return "errno " + errnoName(errno)
	default:
		return "other error"
	}
}

func errnoName(e syscall.Errno) string {
	for _, n := range []struct {
		e    syscall.Errno
		name string
	}{{syscall.ENOENT, "ENOENT"}, {syscall.EEXIST, "EEXIST"}, {syscall.ENOTDIR, "ENOTDIR"},
		{syscall.EISDIR, "EISDIR"}, {syscall.ENOTEMPTY, "ENOTEMPTY"}, {syscall.EINVAL, "EINVAL"},
		{syscall.EBADF, "EBADF"}, {syscall.EBUSY, "EBUSY"}, {syscall.EXDEV, "EXDEV"}, {syscall.ENOSPC, "ENOSPC"}} {
		if n.e == e {
			return n.name
		}
	}
	return fmt.Sprintf("%d (%v)", int(e), e)
}

func count(n int, err error) string { return fmt.Sprintf("%d %s", n, outcome(err)) }

func describeInfo(fi fs.FileInfo, err error) string {
	if err != nil {
		return outcome(err)
	}
	if fi.IsDir() {
		return fi.Name() + " dir"
	}
	return fmt.Sprintf("%s file of %d bytes", fi.Name(), fi.Size())
}

// dump lists every directory and file below root, with file contents,
// one per line in name order, paths relative to root.
func dump(t rapid.TB, fsys FS, root string) string {
	t.Helper()
	var b strings.Builder
	var walk func(rel string)
	walk = func(rel string) {
		es, err := fsys.ReadDir(path.Join(root, rel))
		if err != nil {
			t.Fatalf("dump %s: %v", rel, err)
		}
		for _, e := range es {
			p := path.Join(rel, e.Name())
			if e.IsDir() {
				fmt.Fprintf(&b, "%s/\n", p)
				walk(p)
				continue
			}
			data, err := ReadFile(fsys, filepath.Join(root, p))
			if err != nil {
				t.Fatalf("dump %s: %v", p, err)
			}
			fmt.Fprintf(&b, "%s %q\n", p, data)
		}
	}
	walk("")
	return b.String()
}

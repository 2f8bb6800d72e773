package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ShardInfo describes one shard file found on a drive by Walk.
type ShardInfo struct {
	Name     Name
	Size     int64 // bytes of the file, header included
	Modified time.Time
}

// Walk calls fn for every committed shard file of the drive, directory by
// directory, until fn returns an error, which Walk returns. Files whose
// names are not shard names (and the in-flight files of .tmp/) are
// skipped. A file removed while the walk runs may or may not be reported.
// The order is unspecified.
func (d *Drive) Walk(ctx context.Context, fn func(ShardInfo) error) error {
	if err := d.usable(ctx); err != nil {
		return err
	}
	root := filepath.Join(d.path, shardsDir)
	l1, err := d.readDir(root)
	if err != nil {
		return err
	}
	for _, a := range l1 {
		if !a.IsDir() || !isHexPair(a.Name()) {
			continue
		}
		l2, err := d.readDir(filepath.Join(root, a.Name()))
		if err != nil {
			return err
		}
		for _, b := range l2 {
			if !b.IsDir() || !isHexPair(b.Name()) {
				continue
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			dir := filepath.Join(root, a.Name(), b.Name())
			files, err := d.readDir(dir)
			if err != nil {
				return err
			}
			for _, f := range files {
				name, ok := parseShardFileName(f.Name())
				if !ok || f.IsDir() || name.ID[0:2] != a.Name() || name.ID[2:4] != b.Name() {
					continue
				}
				fi, err := f.Info()
				if errors.Is(err, fs.ErrNotExist) {
					continue
				}
				if err != nil {
					return d.ioError("stat "+name.String(), err)
				}
				if err := fn(ShardInfo{Name: name, Size: fi.Size(), Modified: fi.ModTime()}); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// readDir lists dir; a directory that does not exist (nothing written
// yet, or removed meanwhile) is empty.
func (d *Drive) readDir(dir string) ([]fs.DirEntry, error) {
	es, err := d.fs.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, d.ioError(fmt.Sprintf("list %s", dir), err)
	}
	return es, nil
}

func isHexPair(s string) bool { return len(s) == 2 && validID(s+"000000") }

// parseShardFileName is the inverse of Name.String, for valid names only.
func parseShardFileName(s string) (Name, bool) {
	i := strings.LastIndexByte(s, '.')
	if i < 0 {
		return Name{}, false
	}
	n, err := strconv.Atoi(s[i+1:])
	if err != nil || strconv.Itoa(n) != s[i+1:] {
		return Name{}, false
	}
	name := Name{ID: s[:i], Shard: n}
	if name.Validate() != nil {
		return Name{}, false
	}
	return name, true
}

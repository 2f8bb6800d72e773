package layout

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	"github.com/redoubt-io/redoubt/internal/placement"
)

// Format is the encoding version MarshalBinary writes and UnmarshalBinary
// reads.
const Format = 1

// wire is the encoded layout: JSON, so an operator can read it, with
// partition lists as indexes into the drives in node order, which keeps a
// layout of thousands of slots small enough for one Raft entry.
type wire struct {
	Format       int        `json:"format"`
	Version      uint64     `json:"version"`
	Partitions   int        `json:"partitions"`
	K            int        `json:"k"`
	M            int        `json:"m"`
	Mirror       bool       `json:"mirror"`
	MetaReplicas int        `json:"meta_replicas"`
	Nodes        []wireNode `json:"nodes"`
	Parts        [][]int    `json:"parts"`
	Depth        int        `json:"depth,omitempty"`
}

type wireNode struct {
	ID     string      `json:"id"`
	Zone   string      `json:"zone"`
	Addr   string      `json:"addr"`
	S3Addr string      `json:"s3_addr"`
	Drives []wireDrive `json:"drives"`
}

type wireDrive struct {
	ID       string `json:"id"`
	Capacity uint64 `json:"capacity"`
}

// MarshalBinary encodes a valid layout (see Format).
func (l *Layout) MarshalBinary() ([]byte, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	w := wire{
		Format: Format, Version: l.Version, Partitions: l.Partitions, Depth: l.Depth,
		K: l.Policy.K, M: l.Policy.M, Mirror: l.Policy.Mirror, MetaReplicas: l.MetaReplicas,
	}
	idx := make(map[string]int)
	for _, n := range l.Nodes {
		wn := wireNode{ID: n.ID, Zone: n.Zone, Addr: n.Addr, S3Addr: n.S3Addr}
		for _, d := range n.Drives {
			idx[d.ID] = len(idx)
			wn.Drives = append(wn.Drives, wireDrive(d))
		}
		w.Nodes = append(w.Nodes, wn)
	}
	for _, part := range l.Parts {
		ip := make([]int, len(part))
		for i, d := range part {
			ip[i] = idx[d]
		}
		w.Parts = append(w.Parts, ip)
	}
	return json.Marshal(w)
}

// UnmarshalBinary decodes what MarshalBinary wrote. It accepts only Format
// 1 with no unknown fields and no trailing data, and the result must pass
// Validate; errors wrap ErrFormat.
func (l *Layout) UnmarshalBinary(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var w wire
	if err := dec.Decode(&w); err != nil {
		return fmt.Errorf("%w: %w", ErrFormat, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: trailing data", ErrFormat)
	}
	if w.Format != Format {
		return fmt.Errorf("%w: format %d, this version reads %d", ErrFormat, w.Format, Format)
	}
	out := Layout{
		Version: w.Version, Partitions: w.Partitions, MetaReplicas: w.MetaReplicas, Depth: w.Depth,
		Policy: placement.Policy{K: w.K, M: w.M, Mirror: w.Mirror},
	}
	var ids []string
	for _, wn := range w.Nodes {
		n := Node{ID: wn.ID, Zone: wn.Zone, Addr: wn.Addr, S3Addr: wn.S3Addr}
		for _, wd := range wn.Drives {
			n.Drives = append(n.Drives, Drive(wd))
			ids = append(ids, wd.ID)
		}
		out.Nodes = append(out.Nodes, n)
	}
	if len(w.Parts) > MaxPartitions {
		return fmt.Errorf("%w: %d partition lists", ErrFormat, len(w.Parts))
	}
	for p, ip := range w.Parts {
		part := make([]string, len(ip))
		for i, d := range ip {
			if d < 0 || d >= len(ids) {
				return fmt.Errorf("%w: partition %d: drive index %d of %d", ErrFormat, p, d, len(ids))
			}
			part[i] = ids[d]
		}
		out.Parts = append(out.Parts, part)
	}
	// A layout split before data partitions split with the metadata
	// lists the base partitions' drives alone: its data partitions are
	// their halves, which kept their drives.
	if out.Depth > 0 && len(out.Parts) == out.Partitions && out.Partitions > 0 && out.Partitions <= MaxPartitions {
		out.Parts = splitParts(out.Parts, out.Partitions<<out.DataDepth())
	}
	if err := out.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrFormat, err)
	}
	*l = out
	return nil
}

package objects

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/redoubt-io/redoubt/internal/blocks"
	"github.com/redoubt-io/redoubt/internal/meta"
	"github.com/redoubt-io/redoubt/internal/records"
	"github.com/redoubt-io/redoubt/internal/vset"
)

// Degraded placements of available buckets' bodies, and their
// re-spreading.
//
// A node that takes an available bucket's large body when too few of the
// layout's drives for it are online to make the policy's write quorum (it
// is in a minority of a partition) writes it all the same, as copies on
// the drives that are online (blocks.Set.WriteDegraded), under an ID of
// degradedIDHex digits, and notes it: a record keyed 'r' and the data's
// ID in the data notes of the key's base partition (records.DataPartition,
// on the key's replicas, as the version's records are), holding the key
// and the ref. Once the layout's drives are back, the partition's first
// live replica (Respread, run by package node) rewrites the data under
// the policy, notes the new ref under 'd' and the data's ID (as a site's
// copy of another's data is noted), and removes the 'r' note. Reads of
// the version find the 'd' note and read the rewritten data
// (localParts); until then they read the degraded copies. The version's
// record never changes: records are immutable, and what it names is
// found through the note. The degraded copies are left where they are.
// Tests: TestAvailableDegradedPlacementRespread (internal/node).

func degradedNoteKey(refID string) []byte { return append([]byte{'r'}, refID...) }

// degraded says whether ref was written in a degraded placement.
func degraded(ref blocks.Ref) bool { return len(ref.ID) == degradedIDHex }

// degradedNote is the body of a degraded placement's note.
type degradedNote struct {
	Key string     `json:"key"`
	Ref blocks.Ref `json:"ref"`
}

// noteDegraded notes ref, a body of key (of base partition p) written in
// a degraded placement, on the key's replicas that answer, or as hints.
func (s *Service) noteDegraded(ctx context.Context, p uint32, key string, ref blocks.Ref) error {
	rs, err := s.replicasOf(ctx, p)
	if err != nil {
		return err
	}
	body, err := json.Marshal(degradedNote{Key: key, Ref: ref})
	if err != nil {
		return err
	}
	note := []records.Record{{Key: degradedNoteKey(ref.ID), Version: vset.Version{ID: vset.ID{TS: s.clock.Now(), Node: s.writer}, Body: body}}}
	q := records.DataPartition(p)
	n, err := records.Write(rs.Replicas, q, note, len(rs.Replicas), availWait)
	if n == 0 && len(rs.Hints) > 0 {
		n, err = records.Write(rs.Hints, q, note, 1, availWait)
	}
	if n == 0 {
		return fmt.Errorf("objects: noting a degraded placement: %w: %w", meta.ErrUnavailable, err)
	}
	return nil
}

// Respread rewrites under the layout's policy the bodies of base
// partition p written in a degraded placement (see above), as far as the
// layout's drives are back. It returns how many it rewrote; a body whose
// drives are still out of reach is left for the next call.
func (s *Service) Respread(ctx context.Context, p uint32) (int, error) {
	rs, err := s.replicasOf(ctx, p)
	if err != nil {
		return 0, err
	}
	q := records.DataPartition(p)
	n := 0
	from, to := []byte{'r'}, []byte{'s'}
	for ctx.Err() == nil {
		recs, more, _, err := records.ReadRange(rs.readers(), q, from, to, 100, availWait, s.cfg.Now)
		if err != nil {
			return n, err
		}
		for i := 0; i < len(recs); {
			j := i
			for j < len(recs) && bytes.Equal(recs[j].Key, recs[i].Key) {
				j++
			}
			st := records.StateOf(recs[i:j])
			for _, v := range st.Visible() {
				done, err := s.respreadOne(ctx, rs, p, recs[i].Key, v)
				if err != nil {
					return n, err
				}
				if done {
					n++
				}
			}
			i = j
		}
		if !more || len(recs) == 0 {
			break
		}
		from = append(bytes.Clone(recs[len(recs)-1].Key), 0)
	}
	return n, nil
}

// respreadOne rewrites the body note v (of key nk) names, unless done
// already, and removes the note; done says it did.
func (s *Service) respreadOne(ctx context.Context, rs RecordSet, p uint32, nk []byte, v vset.Version) (done bool, err error) {
	var dn degradedNote
	if err := json.Unmarshal(v.Body, &dn); err != nil || dn.Ref.ID == "" {
		return false, nil // not a note this version wrote: left alone
	}
	q := records.DataPartition(p)
	if _, ok := s.noted(rs, q, dn.Ref.ID); !ok {
		rc, err := s.data.Open(ctx, dn.Ref, 0, dn.Ref.Size)
		if err != nil {
			return false, nil // its copies are out of reach: later
		}
		spread, err := s.writeAvailDataMay(ctx, p, dn.Key, rc, false)
		rc.Close()
		if err != nil {
			return false, nil // the layout's drives are not back yet
		}
		if spread.Size != dn.Ref.Size {
			s.deleteData(ctx, spread)
			return false, fmt.Errorf("objects: re-spreading %s: %d bytes of %d", dn.Ref.ID, spread.Size, dn.Ref.Size)
		}
		body, err := json.Marshal(spread)
		if err != nil {
			return false, err
		}
		note := []records.Record{{Key: dataNoteKey(dn.Ref.ID), Version: vset.Version{ID: vset.ID{TS: s.clock.Now(), Node: s.writer}, Body: body}}}
		if c, err := records.Write(rs.Replicas, q, note, len(rs.Replicas), availWait); c == 0 {
			s.deleteData(ctx, spread)
			return false, fmt.Errorf("objects: noting a re-spread body: %w: %w", meta.ErrUnavailable, err)
		}
		done = true
	}
	// Re-spread: the degraded note has served.
	gone := []records.Record{{Key: nk, Removal: true, Version: vset.Version{ID: v.ID}}}
	if c, err := records.Write(rs.Replicas, q, gone, len(rs.Replicas), availWait); c == 0 {
		return done, fmt.Errorf("objects: removing a degraded placement's note: %w: %w", meta.ErrUnavailable, err)
	}
	return done, nil
}

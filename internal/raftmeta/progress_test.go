package raftmeta

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redoubt-io/redoubt/internal/meta"
)

// learnerCluster is three hosts where group 0 has voters 1 and 2, and node
// 3 hosts it empty, cut off from the others, ready to be added.
func learnerCluster(t *testing.T, tweak func(*Config)) (*cluster, uint64) {
	c := newCluster(t, 3, nil, tweak)
	c.groups[0] = []uint64{1, 2}
	for _, id := range c.ids {
		if err := c.host(id).EnsureGroup(0, []uint64{1, 2}); err != nil {
			t.Fatal(err)
		}
	}
	c.net.isolate([]uint64{3}, c.ids)
	return c, c.leader(0, 1, 2)
}

func progressOf(t *testing.T, h *Host, p meta.Partition) Progress {
	t.Helper()
	pr, err := h.Progress(p)
	if err != nil {
		t.Fatal(err)
	}
	return pr
}

func TestProgressFollowsALearner(t *testing.T) {
	c, lead := learnerCluster(t, fastConfig)
	ctx := context.Background()
	acked := commitKeys(t, c.host(lead), 0, "before", 20)
	if err := c.host(lead).AddLearner(ctx, 0, 3); err != nil {
		t.Fatal(err)
	}

	pr := progressOf(t, c.host(lead), 0)
	if len(pr.Members) != 3 || pr.Commit < uint64(len(acked)) || pr.Term == 0 {
		t.Fatalf("progress %+v: want 3 members and commit ≥ %d", pr, len(acked))
	}
	for _, m := range pr.Members {
		switch m.ID {
		case 1, 2:
			if m.Learner || m.AddedAt != 0 || m.Match == 0 {
				t.Errorf("voter %+v", m)
			}
			if m.ID == lead && (!m.Active || m.Match < pr.Commit) {
				t.Errorf("the leader itself: %+v, commit %d", m, pr.Commit)
			}
		case 3:
			if !m.Learner || m.Match != 0 || m.AddedAt == 0 || m.AddedAt > pr.Commit {
				t.Errorf("cut-off learner %+v, commit %d", m, pr.Commit)
			}
		}
	}
	added := func() uint64 { m, _ := pr.Member(3); return m.AddedAt }()

	// Only the leader answers; a host without the group says so.
	follower := uint64(3 - lead) // the other of 1 and 2
	if _, err := c.host(follower).Progress(0); !errors.Is(err, ErrNotLeader) {
		t.Errorf("progress at a follower: %v, want ErrNotLeader", err)
	}
	if _, err := c.host(lead).Progress(7); !errors.Is(err, ErrNoGroup) {
		t.Errorf("progress of a group not hosted: %v, want ErrNoGroup", err)
	}

	// A member that does not answer stops being active after the next
	// quorum check.
	eventually(t, 5*time.Second, "the cut-off learner is seen inactive", func() error {
		if m, _ := progressOf(t, c.host(lead), 0).Member(3); m.Active {
			return errors.New("still active")
		}
		return nil
	})

	acked = append(acked, commitKeys(t, c.host(lead), 0, "during", 10)...)
	c.net.heal()
	eventually(t, 10*time.Second, "the learner catches up", func() error {
		pr := progressOf(t, c.host(lead), 0)
		m, _ := pr.Member(3)
		if !m.Active || m.Match < added || m.Match < pr.Commit {
			return fmt.Errorf("learner %+v, commit %d", m, pr.Commit)
		}
		if m.AddedAt != added {
			return fmt.Errorf("learner added at %d, first seen added at %d", m.AddedAt, added)
		}
		return nil
	})
	d, err := dump(c.host(3), 0)
	if err != nil || len(d) != len(acked) {
		t.Fatalf("the learner holds %d keys, %v; want %d", len(d), err, len(acked))
	}

	// Promoted, it is a voter like the others.
	if err := c.host(lead).AddVoter(ctx, 0, 3); err != nil {
		t.Fatal(err)
	}
	if m, _ := progressOf(t, c.host(lead), 0).Member(3); m.Learner || m.AddedAt != 0 {
		t.Errorf("promoted learner: %+v", m)
	}
}

func TestProgressOfALearnerAddedBeforeTheLogStart(t *testing.T) {
	c, lead := learnerCluster(t, func(cfg *Config) {
		fastConfig(cfg)
		cfg.SnapshotEntries = 8
	})
	ctx := context.Background()
	commitKeys(t, c.host(lead), 0, "before", 5)
	if err := c.host(lead).AddLearner(ctx, 0, 3); err != nil {
		t.Fatal(err)
	}
	first, _ := progressOf(t, c.host(lead), 0).Member(3)
	// Enough entries that the one adding the learner is discarded.
	acked := commitKeys(t, c.host(lead), 0, "after", 40)
	pr := progressOf(t, c.host(lead), 0)
	if pr.LogStart <= first.AddedAt {
		t.Fatalf("log starts at %d, the learner was added at %d: not discarded", pr.LogStart, first.AddedAt)
	}
	m, _ := pr.Member(3)
	if m.AddedAt != pr.LogStart-1 || m.AddedAt < first.AddedAt {
		t.Fatalf("learner added at %d, log starts at %d; want the index before the log start", m.AddedAt, pr.LogStart)
	}
	c.net.heal()
	eventually(t, 10*time.Second, "the learner catches up from a snapshot", func() error {
		pr := progressOf(t, c.host(lead), 0)
		m, _ := pr.Member(3)
		if m.Match < m.AddedAt || m.Match < pr.Commit {
			return fmt.Errorf("learner %+v, commit %d", m, pr.Commit)
		}
		return nil
	})
	d, err := dump(c.host(3), 0)
	if err != nil || len(d) != 5+len(acked) {
		t.Fatalf("the learner holds %d keys, %v; want %d", len(d), err, 5+len(acked))
	}
}

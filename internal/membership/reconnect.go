package membership

import (
	"math/rand/v2"
	"time"
)

// reconnect tries, every interval, to reach one member listed as Dead
// (not Left) for less than timeout, picked at random: once the link to
// any member of a partitioned side is back, one state exchange with it
// merges the two sides' views, and each side's members refute their
// deaths. It runs until Close (see Config.ReconnectInterval).
// TestReconnectsToADeadMemberThatCameBack.
func (m *Members) reconnect(interval, timeout time.Duration, rng *rand.Rand) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-m.done:
			return
		case <-t.C:
		}
		var dead []Member
		now := time.Now()
		for _, mem := range m.List() {
			if mem.State == Dead && mem.ID != m.self.name && now.Sub(mem.Since) < timeout {
				dead = append(dead, mem)
			}
		}
		if len(dead) == 0 {
			continue
		}
		mem := dead[rng.IntN(len(dead))]
		// Not under life's lock: an exchange with an unreachable member
		// waits out memberlist's TCP timeout, which would hold up Close.
		// memberlist's Join after its Shutdown fails or does nothing.
		_, err := m.ml.Join([]string{mem.Addr})
		if err != nil {
			m.log.Debug("dead member still unreachable", "member", mem.ID, "addr", mem.Addr, "err", flatten(err))
			continue
		}
		m.log.Info("reached a member listed as dead", "member", mem.ID, "addr", mem.Addr)
	}
}

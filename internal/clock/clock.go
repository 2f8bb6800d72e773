// Package clock holds what Redoubt's components wait with, so that a
// simulation can order their waits among its own events.
package clock

import "time"

// After makes a component's waits: After(d, what) is a channel that
// receives once d has passed; what names the wait. The nil After uses
// time's timers, as a running node does. The cluster simulation passes
// one that makes every wait an event of its queue: a wait that ends at
// the instant of another event (a retry of one Raft tick ends at the
// next tick) then ends before or after it in an order drawn from the
// seed, not the Go scheduler's (TestSimulationReplays).
type After func(d time.Duration, what string) <-chan time.Time

// Wait is a channel that receives once d has passed.
func (a After) Wait(d time.Duration, what string) <-chan time.Time {
	if a == nil {
		return time.After(d)
	}
	return a(d, what)
}

package clock

import (
	"testing"
	"testing/synctest"
	"time"
)

// TestWait: the nil After waits d on time's clock; a given one is asked,
// with the wait's name.
func TestWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		<-After(nil).Wait(3*time.Second, "nil")
		if waited := time.Since(start); waited != 3*time.Second {
			t.Fatalf("the nil After waited %v, want 3s", waited)
		}
	})
	var asked []string
	a := After(func(d time.Duration, what string) <-chan time.Time {
		asked = append(asked, what)
		ch := make(chan time.Time, 1)
		ch <- time.Time{}
		return ch
	})
	<-a.Wait(time.Hour, "retry")
	if len(asked) != 1 || asked[0] != "retry" {
		t.Fatalf("asked %q, want [retry]", asked)
	}
}

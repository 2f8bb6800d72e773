package raftmeta

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

// TestWithTimeoutEndsWithItsParent: a timeout equal to what is left of
// the caller's deadline ends the caller's context at the same moment,
// never before it. With context.WithTimeout each has a timer due at one
// instant, and a goroutine woken by the inner one could still find the
// outer one running.
func TestWithTimeoutEndsWithItsParent(t *testing.T) {
	for range 200 {
		synctest.Test(t, func(t *testing.T) {
			parent, cancelParent := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancelParent()
			ctx, cancel := withTimeout(parent, 5*time.Second)
			defer cancel()
			if dl, _ := ctx.Deadline(); dl != time.Now().Add(5*time.Second) {
				t.Fatalf("deadline %v, want the parent's", dl)
			}
			<-ctx.Done()
			if parent.Err() == nil {
				t.Fatal("the inner context ended while the caller's still ran")
			}
		})
	}
	synctest.Test(t, func(t *testing.T) {
		parent, cancelParent := context.WithTimeout(context.Background(), time.Minute)
		defer cancelParent()
		ctx, cancel := withTimeout(parent, time.Second)
		defer cancel()
		start := time.Now()
		<-ctx.Done()
		if waited := time.Since(start); waited != time.Second {
			t.Fatalf("a timeout shorter than the caller's deadline ended after %v, want 1s", waited)
		}
		if parent.Err() != nil {
			t.Fatal("the caller's context ended with the inner one")
		}
	})
}

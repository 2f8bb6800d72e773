package membership

import "sync"

// EventKind says what happened to a member.
type EventKind uint8

const (
	// EventJoin: a member is new, or came back after Dead or Left.
	EventJoin EventKind = iota + 1
	// EventUpdate: a live member changed its meta or address.
	EventUpdate
	// EventFail: a member stopped answering and is now Dead.
	EventFail
	// EventLeave: a member left gracefully.
	EventLeave
)

func (k EventKind) String() string {
	switch k {
	case EventJoin:
		return "join"
	case EventUpdate:
		return "update"
	case EventFail:
		return "fail"
	case EventLeave:
		return "leave"
	}
	return "unknown"
}

// Event is a change to a member, with the member as it is after it.
type Event struct {
	Kind   EventKind
	Member Member
}

// Subscribe returns a channel of every change seen from now on, in order,
// and a cancel function that ends the subscription and closes the channel.
// Events queue without bound for a slow reader rather than being dropped
// or blocking gossip; read the channel until it closes or cancel. After
// Close the channel is closed at once.
func (m *Members) Subscribe() (<-chan Event, func()) {
	s := &subscriber{
		out:  make(chan Event),
		wake: make(chan struct{}, 1),
		done: make(chan struct{}),
		exit: make(chan struct{}),
	}
	go s.run()
	m.mu.Lock()
	if m.mu.subs == nil {
		m.mu.Unlock()
		s.stop()
		return s.out, func() {}
	}
	m.mu.subs[s] = struct{}{}
	m.mu.Unlock()
	cancel := func() {
		m.mu.Lock()
		delete(m.mu.subs, s)
		m.mu.Unlock()
		s.stop()
	}
	return s.out, cancel
}

// subscriber decouples gossip from a slow reader: push never blocks, run
// delivers in order.
type subscriber struct {
	out  chan Event
	wake chan struct{}
	done chan struct{}
	exit chan struct{}
	once sync.Once

	mu    sync.Mutex
	queue []Event
}

func (s *subscriber) push(ev Event) {
	s.mu.Lock()
	s.queue = append(s.queue, ev)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *subscriber) run() {
	defer close(s.exit)
	defer close(s.out)
	for {
		s.mu.Lock()
		var ev Event
		ok := len(s.queue) > 0
		if ok {
			ev = s.queue[0]
			s.queue[0] = Event{}
			s.queue = s.queue[1:]
		}
		s.mu.Unlock()
		if !ok {
			select {
			case <-s.wake:
				continue
			case <-s.done:
				return
			}
		}
		select {
		case s.out <- ev:
		case <-s.done:
			return
		}
	}
}

// stop ends run and waits for it, so the channel is closed on return.
func (s *subscriber) stop() {
	s.once.Do(func() { close(s.done) })
	<-s.exit
}

package admin

import "time"

// ServiceState is where a supervised service stands.
type ServiceState string

const (
	ServiceRunning ServiceState = "running"
	// ServiceRestarting: the service failed and waits to be restarted,
	// at once or after a back-off.
	ServiceRestarting ServiceState = "restarting"
	// ServiceFailed: the service failed too often and is no longer
	// restarted; the node goes on without it.
	ServiceFailed ServiceState = "failed"
	// ServiceStopped: the service finished its work or the node is
	// shutting down.
	ServiceStopped ServiceState = "stopped"
)

// ServiceStatus is one supervised service of a node.
type ServiceStatus struct {
	Name  string       `json:"name"`
	State ServiceState `json:"state"`
	// Restarts counts the times the service was started again after a
	// failure, since the node started.
	Restarts int64 `json:"restarts"`
	// LastError is the last failure's error or panic value; it stays
	// after the service recovers.
	LastError string `json:"last_error"`
	// Since is when the service entered its state.
	Since time.Time `json:"since"`
}

package admin

import "time"

// Bucket is a bucket as GET /buckets lists it and POST /buckets answers.
type Bucket struct {
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	// Versioning is "unversioned", "enabled" or "suspended".
	Versioning string `json:"versioning"`
	// Consistency is "strong" or "available", chosen at creation.
	Consistency string `json:"consistency"`
	// WriteCopies: an available bucket's writes are acknowledged once
	// this many nodes hold them (or all that are reachable); 0 for a
	// strong bucket.
	WriteCopies int `json:"write_copies,omitempty"`
	// ConflictRetention: see BucketCreate; "" when none.
	ConflictRetention string `json:"conflict_retention,omitempty"`
	// Replicate: the bucket is replicated to the linked sites.
	Replicate bool `json:"replicate,omitempty"`
}

// Conflicts is the answer of GET /buckets/NAME/conflicts: keys of an
// available bucket written concurrently, each with its concurrent
// versions, the current one first. Next, when set, is the key to ask for
// more after (?after=).
type Conflicts struct {
	Keys []ConflictKey `json:"keys"`
	Next string        `json:"next,omitempty"`
}

// ConflictKey is one key in conflict.
type ConflictKey struct {
	Key      string            `json:"key"`
	Versions []ConflictVersion `json:"versions"`
}

// ConflictVersion is one of a key's concurrent versions.
type ConflictVersion struct {
	VersionID    string    `json:"version_id"`
	Current      bool      `json:"current,omitempty"`
	DeleteMarker bool      `json:"delete_marker,omitempty"`
	Size         int64     `json:"size"`
	ETag         string    `json:"etag,omitempty"`
	Modified     time.Time `json:"modified"`
}

// BucketCreate is the body of POST /buckets.
type BucketCreate struct {
	Name string `json:"name"`
	// Consistency is "strong" (also when empty) or "available".
	Consistency string `json:"consistency,omitempty"`
	// WriteCopies is an available bucket's (0: the default, 2).
	WriteCopies int `json:"write_copies,omitempty"`
	// ConflictRetention is an available bucket's, as a Go duration such
	// as "72h" ("": keep conflicts until they are resolved).
	ConflictRetention string `json:"conflict_retention,omitempty"`
	// Replicate makes an available bucket replicated to the linked sites
	// (redoubt site).
	Replicate bool `json:"replicate,omitempty"`
}

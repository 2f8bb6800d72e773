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
}

// BucketCreate is the body of POST /buckets.
type BucketCreate struct {
	Name string `json:"name"`
	// Consistency is "strong" (also when empty) or "available".
	Consistency string `json:"consistency,omitempty"`
}

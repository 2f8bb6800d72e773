// Package hlc is a hybrid logical clock: timestamps that follow physical
// time closely yet never go backwards and order causally related events,
// even when the clocks of the nodes that issue them disagree.
//
// Contract:
//
//  1. A Timestamp is a physical part (milliseconds since the Unix epoch) and
//     a logical counter. Timestamps compare by physical part, then logical.
//  2. Clock.Now returns a timestamp strictly greater than every timestamp
//     the clock returned before and every timestamp passed to Update.
//  3. Clock.Update(remote) advances the clock past remote and returns the
//     new timestamp, which is greater than remote.
//  4. String encodes a timestamp in a fixed width of lower-case hex digits,
//     so byte order of encodings is time order; Parse is its inverse and
//     accepts nothing else. AppendBinary is the fixed 12-byte big-endian
//     form with the same ordering property.
//
// The package reads no clock of its own: the physical time comes from the
// function given to New. A Clock is safe for concurrent use.
package hlc

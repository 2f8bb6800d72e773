// Package bench is Redoubt's S3 load generator, the library behind
// `redoubt bench`. It drives any S3 endpoint (Redoubt, MinIO, Garage, AWS)
// through aws-sdk-go-v2, so what it measures is what SDK users get.
//
// The contract:
//
//  1. Run(ctx, cfg, progress) validates cfg, makes sure the bucket exists
//     (creating a fresh one by default), preloads objects for get, list and
//     mixed runs (untimed), runs the timed phase for cfg.Duration with
//     cfg.Concurrency workers, and then deletes everything it wrote unless
//     cfg.Keep. It writes only under the key prefix bench/<run>/, so it is
//     safe to point at a bucket that holds other data.
//  2. Every request is made once: the SDK's retries are off, and a failure
//     is counted under its S3 error code instead of hidden. GET bodies are
//     read to the end and their length checked; HEAD lengths and LIST page
//     sizes are checked too. A wrong answer counts as an error.
//  3. Latency is measured per successful request, from the call to the
//     end of its body, into fixed-size log-linear histograms (about 3%
//     resolution, about 9 KiB per request kind), so memory does not grow
//     with run length or concurrency.
//  4. Bodies are cheap to make and differ between objects: a 16-byte
//     per-object header followed by a 1 MiB random block read from a
//     per-object offset. They are seekable, so the SDK can checksum and
//     rewind them without copying.
//  5. Run owns every goroutine it starts and returns only after they have
//     stopped. The progress callback runs on one goroutine at a time, never
//     after Run returns, and must not block for long.
//  6. Cancelling ctx ends the timed phase early: in-flight requests are
//     abandoned and not counted, cleanup still runs (bounded by its own
//     timeout), and Run returns the partial Result with ctx's error.
//
// Run's measurements share the machine with the endpoint when both are
// local; BenchmarkGenerator reports what the generator alone can drive.
package bench

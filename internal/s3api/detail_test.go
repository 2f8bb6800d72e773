package s3api

import (
	"fmt"
	"testing"

	"github.com/redoubt-io/redoubt/internal/objects"
)

func TestErrorDetail(t *testing.T) {
	for _, c := range []struct {
		err  error
		want *Error
	}{
		{fmt.Errorf("%w: invalid uploadId marker %q", objects.ErrInvalidArgument, "x"), invalidArg(`Invalid uploadId marker "x"`)},
		{fmt.Errorf("objects: complete: %w: the upload was created using a sha1 checksum", objects.ErrInvalidRequest),
			invalidReq("The upload was created using a sha1 checksum")},
		{objects.ErrInvalidRequest, invalidReq("Invalid request")},
	} {
		got, internal := toAPIError(c.err)
		if internal || *got != *c.want {
			t.Errorf("%v: got %+v, want %+v", c.err, got, c.want)
		}
	}
}

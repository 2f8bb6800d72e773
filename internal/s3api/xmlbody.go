package s3api

import (
	"bytes"
	"encoding/xml"
	"io"
	"net/http"
	"strings"

	"github.com/redoubt-io/redoubt/internal/objects"
)

// readXMLBody reads a request body meant for an XML parser, refusing more
// than limit bytes before any parsing.
func (s *Server) readXMLBody(r *http.Request, rc *reqCtx) ([]byte, error) {
	limit := s.cfg.MaxXMLBodyBytes
	if r.ContentLength > limit {
		return nil, errXMLTooLarge
	}
	body, err := s.body(r, rc)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(body, limit+1))
	if err != nil {
		return nil, s.bodyError(rc, err)
	}
	if int64(len(b)) > limit {
		return nil, errXMLTooLarge
	}
	return b, nil
}

func decodeXML(b []byte, v any) error {
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	if err := d.Decode(v); err != nil {
		return errMalformedXML
	}
	return nil
}

const maxParts = 10000

type completeXML struct {
	XMLName xml.Name `xml:"CompleteMultipartUpload"`
	Parts   []struct {
		PartNumber        *int    `xml:"PartNumber"`
		ETag              *string `xml:"ETag"`
		ChecksumCRC32     string  `xml:"ChecksumCRC32"`
		ChecksumCRC32C    string  `xml:"ChecksumCRC32C"`
		ChecksumCRC64NVME string  `xml:"ChecksumCRC64NVME"`
		ChecksumSHA1      string  `xml:"ChecksumSHA1"`
		ChecksumSHA256    string  `xml:"ChecksumSHA256"`
	} `xml:"Part"`
}

// parseComplete parses a CompleteMultipartUpload body. Order and ETags
// are checked by the object layer; here only the shape.
func parseComplete(b []byte) ([]objects.CompletePart, error) {
	var c completeXML
	if err := decodeXML(b, &c); err != nil {
		return nil, err
	}
	if len(c.Parts) == 0 || len(c.Parts) > maxParts {
		return nil, errMalformedXML
	}
	parts := make([]objects.CompletePart, len(c.Parts))
	for i, p := range c.Parts {
		// Both fields are required by the schema; a part without them
		// is a malformed request, not a part that was not found.
		if p.PartNumber == nil || p.ETag == nil {
			return nil, errMalformedXML
		}
		if *p.PartNumber < 1 || *p.PartNumber > maxParts {
			return nil, invalidArg("Part number must be an integer between 1 and 10000, inclusive.")
		}
		parts[i] = objects.CompletePart{
			Number: *p.PartNumber,
			ETag:   quoteETag(strings.TrimSpace(*p.ETag)),
			Checksums: objects.Checksums{
				CRC32: p.ChecksumCRC32, CRC32C: p.ChecksumCRC32C, CRC64NVME: p.ChecksumCRC64NVME,
				SHA1: p.ChecksumSHA1, SHA256: p.ChecksumSHA256,
			},
		}
	}
	return parts, nil
}

// quoteETag returns an ETag in its quoted form; clients send both.
func quoteETag(e string) string {
	if len(e) >= 2 && e[0] == '"' && e[len(e)-1] == '"' {
		return e
	}
	return `"` + e + `"`
}

type deleteObject struct {
	Key       string
	VersionID string
}

type deleteXML struct {
	XMLName xml.Name `xml:"Delete"`
	Quiet   bool     `xml:"Quiet"`
	Objects []struct {
		Key       string `xml:"Key"`
		VersionID string `xml:"VersionId"`
	} `xml:"Object"`
}

const maxDeleteKeys = 1000

// parseDelete parses a DeleteObjects body: 1 to 1000 keys.
func parseDelete(b []byte) (quiet bool, objs []deleteObject, err error) {
	var d deleteXML
	if err := decodeXML(b, &d); err != nil {
		return false, nil, err
	}
	if len(d.Objects) == 0 || len(d.Objects) > maxDeleteKeys {
		return false, nil, errMalformedXML
	}
	objs = make([]deleteObject, len(d.Objects))
	for i, o := range d.Objects {
		objs[i] = deleteObject{Key: o.Key, VersionID: o.VersionID}
	}
	return d.Quiet, objs, nil
}

type createBucketXML struct {
	XMLName            xml.Name  `xml:"CreateBucketConfiguration"`
	LocationConstraint string    `xml:"LocationConstraint"`
	Location           *struct{} `xml:"Location"`
	Bucket             *struct{} `xml:"Bucket"`
	Tags               *struct{} `xml:"Tags"`
}

// parseCreateBucket parses an optional CreateBucketConfiguration and
// returns its LocationConstraint. Directory-bucket settings (Location,
// Bucket) and bucket tags are not implemented.
func parseCreateBucket(b []byte) (string, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return "", nil
	}
	var c createBucketXML
	if err := decodeXML(b, &c); err != nil {
		return "", err
	}
	if c.Location != nil || c.Bucket != nil || c.Tags != nil {
		return "", errNotImpl
	}
	return strings.TrimSpace(c.LocationConstraint), nil
}

type versioningXML struct {
	XMLName   xml.Name `xml:"VersioningConfiguration"`
	Status    string   `xml:"Status"`
	MfaDelete string   `xml:"MfaDelete"`
}

// parseVersioning parses a VersioningConfiguration; Status must be
// Enabled or Suspended.
func parseVersioning(b []byte) (objects.Versioning, error) {
	var v versioningXML
	if err := decodeXML(b, &v); err != nil {
		return 0, err
	}
	switch v.MfaDelete {
	case "", "Disabled":
	case "Enabled":
		return 0, errNotImpl
	default:
		return 0, errMalformedXML
	}
	switch v.Status {
	case "Enabled":
		return objects.Enabled, nil
	case "Suspended":
		return objects.Suspended, nil
	}
	return 0, errMalformedXML
}

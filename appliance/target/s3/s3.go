// Package s3 is a target in an S3-compatible bucket (AWS, MinIO, Garage, versitygw, a NAS's
// S3 service...), via github.com/minio/minio-go/v7.
//
// An S3 PUT (and the completion of a multipart upload) is atomic by itself: readers see the
// old object or the new one, never a part. So Put streams straight to the final key and no
// temporary names are ever created. A Put whose source fails aborts its multipart upload, so
// nothing appears under the key.
//
// The client talks to the configured endpoint and nothing else: static credentials only (no
// environment, IMDS or STS lookups), path-style bucket addressing (no <bucket>.<host> DNS
// names), no HTTP proxy from the environment, and a bucket-location lookup, when Region is
// empty, goes to the endpoint itself.
package s3

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/outpost-im/outpost/appliance/target"
)

// partSize is the multipart part size for streams of unknown length. minio-go holds one
// part in memory while uploading it, so this bounds a Put's memory; with S3's 10,000-part
// limit it also caps an object at 160 GB, far above any media file or state archive.
const partSize = 16 << 20

// smallPut is how much Put reads ahead to decide between a single PUT (the whole stream fit)
// and a multipart upload. Most snapshot files (manifests, thumbnails, photos) are small, and
// a single PUT is one round trip instead of three; the read-ahead stays small next to
// partSize so a large Put holds at most smallPut+partSize.
const smallPut = 4 << 20

// cleanupTimeout bounds the best-effort abort of a multipart upload after the caller's
// context was cancelled (the abort cannot use that context).
const cleanupTimeout = 10 * time.Second

// Target is a bucket (and optional key prefix) on an S3-compatible service.
type Target struct {
	client    *minio.Client
	transport *http.Transport
	bucket    string
	prefix    string // "" or "dir/"
	endpoint  string
}

// Open connects to the bucket c describes and checks that it exists and that the keys may
// list it, so a wrong setting is reported when the target is added.
func Open(ctx context.Context, c target.Config) (*Target, error) {
	if c.Endpoint == "" || c.Bucket == "" {
		return nil, fmt.Errorf("s3: endpoint and bucket are required")
	}
	if strings.Contains(c.Endpoint, "://") || strings.Contains(c.Endpoint, "/") {
		return nil, fmt.Errorf("s3: endpoint %q must be host:port without a scheme or path (plain HTTP is a separate setting)", c.Endpoint)
	}
	prefix := strings.Trim(c.Dir, "/")
	if prefix != "" {
		if err := target.CheckName(prefix); err != nil {
			return nil, fmt.Errorf("s3: dir: %w", err)
		}
		prefix += "/"
	}
	tr, err := transport(c)
	if err != nil {
		return nil, err
	}
	client, err := minio.New(c.Endpoint, &minio.Options{
		Creds:     credentials.NewStaticV4(c.AccessKey, c.SecretKey, ""),
		Secure:    !c.HTTP,
		Transport: tr,
		Region:    c.Region,
		// Path style keeps every request on the configured host; the default would use
		// <bucket>.<host> for AWS endpoints, which is a different name to resolve.
		BucketLookup: minio.BucketLookupPath,
		// minio-go retries 10 times with backoff by default: minutes against a box that is
		// switched off. A few retries ride out a hiccup; the next snapshot retries the rest.
		MaxRetries: 3,
	})
	if err != nil {
		return nil, fmt.Errorf("s3: %w", err)
	}
	t := &Target{client: client, transport: tr, bucket: c.Bucket, prefix: prefix, endpoint: c.Endpoint}
	if err := t.check(ctx); err != nil {
		tr.CloseIdleConnections()
		return nil, err
	}
	return t, nil
}

// transport is minio-go's default transport minus the environment's proxy, plus the
// configured private CA.
func transport(c target.Config) (*http.Transport, error) {
	tr := &http.Transport{
		Proxy: nil, // never send the store's traffic (and keys' signatures) elsewhere
		DialContext: (&net.Dialer{
			Timeout:   30 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       time.Minute,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: 10 * time.Second,
		// A slow NAS may take long to assemble a multipart upload, but a store that accepts
		// the connection and then never answers must not hang a snapshot forever.
		ResponseHeaderTimeout: 5 * time.Minute,
		// Objects must arrive byte for byte: no transparent gzip decoding.
		DisableCompression: true,
	}
	if !c.HTTP {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if c.CAPEM != "" {
			pool, err := x509.SystemCertPool()
			if err != nil {
				pool = x509.NewCertPool()
			}
			if !pool.AppendCertsFromPEM([]byte(c.CAPEM)) {
				return nil, fmt.Errorf("s3: the CA certificate setting contains no PEM certificate")
			}
			cfg.RootCAs = pool
		}
		tr.TLSClientConfig = cfg
	}
	return tr, nil
}

// check lists at most one key: it needs the bucket to exist and the keys to be valid, and
// (unlike HEAD bucket, whose errors have no body) its error responses say which is wrong.
func (t *Target) check(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := t.client.ListObjects(ctx, t.bucket, minio.ListObjectsOptions{Prefix: t.prefix, MaxKeys: 1})
	var err error
	first := true
	for obj := range ch {
		if first {
			// One answer (a key, an empty list or an error) is enough. Later entries
			// only report the cancel below; the channel must still be drained.
			err, first = obj.Err, false
			cancel()
		}
	}
	if err != nil {
		return t.describe("open bucket", err)
	}
	return nil
}

// describe turns an S3 error into one that says what to fix. It never includes keys.
func (t *Target) describe(op string, err error) error {
	var uae x509.UnknownAuthorityError
	var cve *tls.CertificateVerificationError
	if errors.As(err, &uae) || errors.As(err, &cve) {
		return fmt.Errorf("s3: %s: the certificate of %s is not trusted (add the CA certificate that signed it): %w", op, t.endpoint, err)
	}
	switch minio.ToErrorResponse(err).Code {
	case "NoSuchBucket":
		return fmt.Errorf("s3: bucket %q does not exist on %s: create it on the S3 service first: %w", t.bucket, t.endpoint, err)
	case "InvalidAccessKeyId", "XAdminUserNotFound": // the latter is versitygw's word for it
		return fmt.Errorf("s3: %s: %s does not know the access key ID: %w", op, t.endpoint, err)
	case "SignatureDoesNotMatch":
		return fmt.Errorf("s3: %s: %s refused the secret key (it does not match the access key ID): %w", op, t.endpoint, err)
	case "AccessDenied":
		return fmt.Errorf("s3: %s: access to bucket %q denied: the key needs permission to list, read, write and delete objects: %w", op, t.bucket, err)
	}
	return fmt.Errorf("s3: %s: %w", op, err)
}

func (t *Target) key(name string) (string, error) {
	if err := target.CheckName(name); err != nil {
		return "", fmt.Errorf("s3: %w", err)
	}
	return t.prefix + name, nil
}

func isNotFound(err error) bool {
	code := minio.ToErrorResponse(err).Code
	return code == "NoSuchKey" || code == "NotFound"
}

// Put implements target.Target.
func (t *Target) Put(ctx context.Context, name string, r io.Reader) error {
	key, err := t.key(name)
	if err != nil {
		return err
	}
	r = target.ContextReader(ctx, r)
	head := make([]byte, smallPut)
	n, err := io.ReadFull(r, head)
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		// The whole file is in memory: one PUT with a known length.
		_, err = t.client.PutObject(ctx, t.bucket, key, bytes.NewReader(head[:n]), int64(n), minio.PutObjectOptions{})
	case err != nil:
		return fmt.Errorf("s3: put %s: %w", name, err)
	default:
		// Unknown length: multipart, one part in memory at a time. On a source error
		// minio-go aborts the upload, so no object appears.
		_, err = t.client.PutObject(ctx, t.bucket, key, io.MultiReader(bytes.NewReader(head), r), -1,
			minio.PutObjectOptions{PartSize: partSize})
		if err != nil && ctx.Err() != nil {
			// minio-go's abort used the cancelled context and failed: abort here so the
			// parts do not keep using space (they are invisible either way).
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
			_ = t.client.RemoveIncompleteUpload(cctx, t.bucket, key)
			cancel()
		}
	}
	if err != nil {
		return t.describe("put "+name, err)
	}
	return nil
}

// Get implements target.Target.
func (t *Target) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	key, err := t.key(name)
	if err != nil {
		return nil, err
	}
	obj, err := t.client.GetObject(ctx, t.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, t.describe("get "+name, err)
	}
	// GetObject is lazy; Stat sends the GET so a missing key is reported here, not on the
	// first Read.
	if _, err := obj.Stat(); err != nil {
		obj.Close()
		if isNotFound(err) {
			return nil, fmt.Errorf("s3: %s: %w", name, target.ErrNotExist)
		}
		return nil, t.describe("get "+name, err)
	}
	return obj, nil
}

// Stat implements target.Target.
func (t *Target) Stat(ctx context.Context, name string) (target.Info, error) {
	key, err := t.key(name)
	if err != nil {
		return target.Info{}, err
	}
	oi, err := t.client.StatObject(ctx, t.bucket, key, minio.StatObjectOptions{})
	if isNotFound(err) {
		return target.Info{}, fmt.Errorf("s3: %s: %w", name, target.ErrNotExist)
	}
	if err != nil {
		return target.Info{}, t.describe("stat "+name, err)
	}
	return target.Info{Name: name, Size: oi.Size, ModTime: oi.LastModified}, nil
}

// List implements target.Target.
func (t *Target) List(ctx context.Context, dir string) ([]target.Info, error) {
	prefix := t.prefix
	if dir != "" {
		k, err := t.key(dir)
		if err != nil {
			return nil, err
		}
		prefix = k + "/"
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var out []target.Info
	var err error
	// minio-go's lister is a goroutine: the channel must be drained even after an error.
	for obj := range t.client.ListObjects(ctx, t.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if err != nil {
			continue
		}
		if obj.Err != nil {
			err = obj.Err
			cancel()
			continue
		}
		if strings.HasSuffix(obj.Key, "/") {
			continue // a "folder" placeholder made by some S3 consoles, not a file
		}
		out = append(out, target.Info{Name: strings.TrimPrefix(obj.Key, t.prefix), Size: obj.Size, ModTime: obj.LastModified})
	}
	if err != nil {
		return nil, t.describe("list "+dir, err)
	}
	return out, nil
}

// Delete implements target.Target.
func (t *Target) Delete(ctx context.Context, name string) error {
	key, err := t.key(name)
	if err != nil {
		return err
	}
	// S3 answers 204 for a missing key too; some stores say NoSuchKey instead.
	if err := t.client.RemoveObject(ctx, t.bucket, key, minio.RemoveObjectOptions{}); err != nil && !isNotFound(err) {
		return t.describe("delete "+name, err)
	}
	return nil
}

// Close implements target.Target.
func (t *Target) Close() error {
	t.transport.CloseIdleConnections()
	return nil
}

var _ target.Target = (*Target)(nil)

// Package smtest is an in-memory AWS Secrets Manager for tests. No Secrets
// Manager emulator can be installed here, so Server speaks the service's JSON
// 1.1 protocol (POST /, X-Amz-Target: secretsmanager.<Op>, Content-Type:
// application/x-amz-json-1.1) to the real SDK client, with the real response
// and error shapes, for the operations kve uses: CreateSecret,
// PutSecretValue, GetSecretValue, DeleteSecret, DescribeSecret,
// ReplicateSecretToRegions and RemoveRegionsFromReplication.
//
// It keeps the staging labels (AWSCURRENT, AWSPREVIOUS), honours
// ClientRequestToken as the version id, schedules deletions (a scheduled
// secret answers InvalidRequestException as on AWS), records replica regions
// and their keys (CreateSecret's AddReplicaRegions, ReplicateSecretToRegions)
// and, as AWS does, refuses to delete a secret that still has replicas,
// counts calls and injects faults. It is one region (Region): replicas exist
// only as their record on the primary, so they never fail, and
// ForceOverwriteReplicaSecret has nothing to overwrite. It does not verify
// signatures (it only requires one), never purges deprecated versions or
// scheduled secrets, and ignores rotation.
package smtest

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go/logging"
)

// Region and Account appear in the ARNs the server makes.
const (
	Region  = "us-east-1"
	Account = "123456789012"
)

// Server is an in-memory Secrets Manager behind an httptest server, closed
// when the test that made it ends. It is safe for concurrent use.
type Server struct {
	// URL is the endpoint to point a client at (BaseEndpoint).
	URL string

	srv *httptest.Server

	mu      sync.Mutex
	secrets map[string]*secret // by name
	calls   map[string]int
	faults  map[string]Fault
}

// NewServer starts a server with no secrets.
func NewServer(t testing.TB) *Server {
	t.Helper()
	s := &Server{
		secrets: map[string]*secret{},
		calls:   map[string]int{},
		faults:  map[string]Fault{},
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	s.URL = s.srv.URL
	t.Cleanup(s.srv.Close)
	return s
}

// Client returns a real SDK client for the server with fake static
// credentials. It retries as the SDK does by default (3 attempts, throttling
// and 5xx retried) but with millisecond backoffs and no retry quota, so fault
// tests run fast and repeatably. Retries are logged to t, so use the client
// only while t runs.
func (s *Server) Client(t testing.TB) *secretsmanager.Client {
	t.Helper()
	return secretsmanager.New(secretsmanager.Options{
		Region:       Region,
		BaseEndpoint: aws.String(s.URL),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDSMTESTFAKE", "smtest-fake-secret-access-key", ""),
		HTTPClient:   s.srv.Client(),
		Retryer: retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxBackoff = 2 * time.Millisecond
			o.RateLimiter = ratelimit.None
		}),
		Logger: logging.LoggerFunc(func(_ logging.Classification, format string, v ...any) {
			t.Logf("secretsmanager client: "+format, v...)
		}),
		ClientLogMode: aws.LogRetries,
	})
}

// Calls returns how many requests named op ("GetSecretValue", …) the server
// has received, counting failed ones and each SDK retry.
func (s *Server) Calls(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

// Fault is an error response the server gives instead of performing an
// operation.
type Fault struct {
	Status  int    // HTTP status
	Type    string // the __type the SDK turns into its error code
	Message string
	// Times is how many calls fail before the operation works again; 0 means
	// every call until Fail is called again. The SDK retries throttling and
	// 5xx faults itself, so Times 1 is absorbed by one retry.
	Times int
}

// Throttling is Secrets Manager's answer to a caller over its request rate.
var Throttling = Fault{Status: http.StatusBadRequest, Type: "ThrottlingException", Message: "Rate exceeded"}

// InternalError is a server-side failure.
var InternalError = Fault{Status: http.StatusInternalServerError, Type: "InternalServiceError", Message: "An error occurred on the server side."}

// Fail makes calls of op answer f from now on; a zero Fault clears it.
func (s *Server) Fail(op string, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.Type == "" {
		delete(s.faults, op)
		return
	}
	s.faults[op] = f
}

// apiError is an error response in the protocol's shape.
type apiError struct {
	status int
	typ    string
	msg    string
}

func (e *apiError) Error() string { return e.typ + ": " + e.msg }

func errNotFound() *apiError {
	return &apiError{http.StatusBadRequest, "ResourceNotFoundException", "Secrets Manager can't find the specified secret."}
}

func errInvalidParameter(msg string) *apiError {
	return &apiError{http.StatusBadRequest, "InvalidParameterException", msg}
}

func errValidation(msg string) *apiError {
	return &apiError{http.StatusBadRequest, "ValidationException", msg}
}

func errMarkedForDeletion() *apiError {
	return &apiError{http.StatusBadRequest, "InvalidRequestException", "You can't perform this operation on the secret because it was marked for deletion."}
}

const (
	jsonContentType = "application/x-amz-json-1.1"
	targetPrefix    = "secretsmanager."
)

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	op, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), targetPrefix)
	s.mu.Lock()
	s.calls[op]++
	s.mu.Unlock()
	var resp any
	err := s.check(r, ok)
	if err == nil {
		err = s.fault(op)
	}
	if err == nil {
		resp, err = s.dispatch(op, r)
	}
	w.Header().Set("Content-Type", jsonContentType)
	w.Header().Set("X-Amzn-Requestid", newUUID())
	if err != nil {
		w.WriteHeader(err.status)
		json.NewEncoder(w).Encode(map[string]string{"__type": err.typ, "Message": err.msg})
		return
	}
	json.NewEncoder(w).Encode(resp)
}

// check rejects what the real endpoint rejects before looking at the operation.
func (s *Server) check(r *http.Request, hasTarget bool) *apiError {
	switch {
	case r.Method != http.MethodPost || r.URL.Path != "/":
		return &apiError{http.StatusNotFound, "UnknownOperationException", "Only POST / is served."}
	case !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 "):
		return &apiError{http.StatusForbidden, "MissingAuthenticationTokenException", "Missing Authentication Token"}
	case !hasTarget:
		return &apiError{http.StatusBadRequest, "UnknownOperationException", "X-Amz-Target must name a secretsmanager operation."}
	case r.Header.Get("Content-Type") != jsonContentType:
		return &apiError{http.StatusBadRequest, "SerializationException", "Content-Type must be " + jsonContentType + "."}
	}
	return nil
}

func (s *Server) fault(op string) *apiError {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.faults[op]
	if !ok {
		return nil
	}
	if f.Times > 0 {
		if f.Times--; f.Times == 0 {
			delete(s.faults, op)
		} else {
			s.faults[op] = f
		}
	}
	return &apiError{f.Status, f.Type, f.Message}
}

func (s *Server) dispatch(op string, r *http.Request) (any, *apiError) {
	switch op {
	case "CreateSecret":
		return call(r, s.createSecret)
	case "PutSecretValue":
		return call(r, s.putSecretValue)
	case "GetSecretValue":
		return call(r, s.getSecretValue)
	case "DeleteSecret":
		return call(r, s.deleteSecret)
	case "DescribeSecret":
		return call(r, s.describeSecret)
	case "ReplicateSecretToRegions":
		return call(r, s.replicateSecretToRegions)
	case "RemoveRegionsFromReplication":
		return call(r, s.removeRegionsFromReplication)
	}
	return nil, &apiError{http.StatusBadRequest, "UnknownOperationException", "Unknown operation " + op + "."}
}

// call decodes the request body into In and runs op, which takes the
// server's lock itself; what op returns must share no memory with the
// server's state, since it is encoded after the lock is released.
func call[In any](r *http.Request, op func(*In) (any, *apiError)) (any, *apiError) {
	var in In
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&in); err != nil {
		return nil, &apiError{http.StatusBadRequest, "SerializationException", "Request body is not valid JSON."}
	}
	return op(&in)
}

// epoch is the protocol's timestamp: seconds since the Unix epoch, as a number.
func epoch(t time.Time) float64 { return float64(t.UnixMilli()) / 1000 }

func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

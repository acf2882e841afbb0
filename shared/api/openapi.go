package api

import (
	_ "embed"
	"net/http"
)

// openAPISpec describes every route; a test holds it and the router to each other.
//
//go:embed openapi.yaml
var openAPISpec []byte

func (s *server) openAPI(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/yaml; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Write(openAPISpec)
	return nil
}

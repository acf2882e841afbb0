package lambdahttp

import (
	"encoding/base64"
	"io"
	"net/http"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/go-cmp/cmp"
)

func TestBufferedResponse(t *testing.T) {
	png := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
	tests := []struct {
		name    string
		handler http.HandlerFunc
		want    events.APIGatewayProxyResponse
	}{{
		name: "several Set-Cookie headers survive",
		handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Add("Set-Cookie", "a=1; Path=/")
			w.Header().Add("Set-Cookie", "b=2; Path=/; HttpOnly")
			w.Header().Add("Vary", "Origin")
			w.Header().Add("Vary", "Cookie")
			w.WriteHeader(http.StatusSeeOther)
		},
		want: events.APIGatewayProxyResponse{StatusCode: http.StatusSeeOther, MultiValueHeaders: map[string][]string{
			"Set-Cookie": {"a=1; Path=/", "b=2; Path=/; HttpOnly"},
			"Vary":       {"Origin", "Cookie"},
		}},
	}, {
		name: "nothing written is a 200 without body",
		handler: func(w http.ResponseWriter, r *http.Request) {
		},
		want: events.APIGatewayProxyResponse{StatusCode: http.StatusOK, MultiValueHeaders: map[string][]string{}},
	}, {
		name: "UTF-8 text stays text, its type sniffed as net/http would",
		handler: func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "<!DOCTYPE html><p>héllo</p>")
		},
		want: events.APIGatewayProxyResponse{StatusCode: http.StatusOK,
			MultiValueHeaders: map[string][]string{"Content-Type": {"text/html; charset=utf-8"}},
			Body:              "<!DOCTYPE html><p>héllo</p>"},
	}, {
		name: "binary body is base64",
		handler: func(w http.ResponseWriter, r *http.Request) {
			w.Write(png)
		},
		want: events.APIGatewayProxyResponse{StatusCode: http.StatusOK,
			MultiValueHeaders: map[string][]string{"Content-Type": {"image/png"}},
			Body:              base64.StdEncoding.EncodeToString(png), IsBase64Encoded: true},
	}, {
		name: "nil Content-Type turns sniffing off and is left out",
		handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header()["Content-Type"] = nil
			io.WriteString(w, "plain")
		},
		want: events.APIGatewayProxyResponse{StatusCode: http.StatusOK, MultiValueHeaders: map[string][]string{}, Body: "plain"},
	}, {
		name: "1xx is skipped, the first final status wins",
		handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusEarlyHints)
			w.WriteHeader(http.StatusAccepted)
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, `{}`)
		},
		want: events.APIGatewayProxyResponse{StatusCode: http.StatusAccepted,
			MultiValueHeaders: map[string][]string{"Content-Type": {"application/json"}}, Body: `{}`},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := events.APIGatewayProxyRequest{HTTPMethod: "GET", Path: "/"}
			got, err := Buffered(tt.handler)(t.Context(), ev)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("response (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBufferedRefusesBadEvent(t *testing.T) {
	called := false
	h := http.HandlerFunc(func(http.ResponseWriter, *http.Request) { called = true })
	ev := events.APIGatewayProxyRequest{HTTPMethod: "POST", Path: "/", Body: "%%%", IsBase64Encoded: true}
	if _, err := Buffered(h)(t.Context(), ev); err == nil || called {
		t.Errorf("Buffered = %v, handler called %v; want an error and no call", err, called)
	}
}

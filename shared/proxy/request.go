package proxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/keyvault-edge/kve/shared/kve"
)

// clientIP is the address the request came from: the socket peer in local
// mode, API Gateway's requestContext.identity.sourceIp on Lambda (the
// adapter puts it in RemoteAddr). Never a client-supplied header
// (SECURITY T11).
func clientIP(r *http.Request) netip.Addr {
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return ap.Addr().Unmap().WithZone("")
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, _ := netip.ParseAddr(host)
	return a.Unmap().WithZone("")
}

// maxInspect is the largest JSON request body the proxy reads whole to learn
// the model; larger bodies stream through untouched.
const maxInspect = 1 << 20

// inspectRequest learns the model from the request (the JSON body's "model",
// or Gemini's path) and the body size. A small JSON body is read whole and
// replayed to the upstream; everything else streams.
func inspectRequest(r *http.Request, c *call) *denial {
	if c.route.provider.Family == kve.FamilyGemini {
		c.usage.Model = geminiModel(c.usage.Path)
	}
	c.usage.BytesIn = max(r.ContentLength, 0)
	if r.ContentLength <= 0 || r.ContentLength > maxInspect || !isJSON(r.Header.Get("Content-Type")) {
		return nil
	}
	body := make([]byte, r.ContentLength)
	if _, err := io.ReadFull(r.Body, body); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return &denial{code: codeTooLarge, reason: "too_large"}
		}
		return &denial{code: codeBadRequest, reason: "body_read", message: "The request body could not be read."}
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	var model string
	members(body, func(key, value []byte) bool {
		switch string(key) {
		case "model":
			model = stringValue(value)
		// The most the request lets the model write, for the Meter's
		// reservation: names of OpenAI, Anthropic and Gemini.
		case "max_tokens", "max_completion_tokens", "max_output_tokens":
			c.ask.MaxOutputTokens = max(c.ask.MaxOutputTokens, intValue(value))
		case "generationConfig":
			members(value, func(key, value []byte) bool {
				if string(key) == "maxOutputTokens" {
					c.ask.MaxOutputTokens = max(c.ask.MaxOutputTokens, intValue(value))
				}
				return true
			})
		}
		return true
	})
	if c.usage.Model == "" {
		c.usage.Model = kve.Truncate(model, 100)
	}
	return nil
}

// geminiModel reads "gemini-2.0-flash" from /v1beta/models/gemini-2.0-flash:generateContent.
func geminiModel(path string) string {
	_, after, ok := strings.Cut(path, "/models/")
	if !ok {
		return ""
	}
	model, _, _ := strings.Cut(after, ":")
	model, _, _ = strings.Cut(model, "/")
	return kve.Truncate(model, 100)
}

// mediaType is a Content-Type without its parameters: read on every
// request, so without mime.ParseMediaType's allocations.
func mediaType(contentType string) string {
	mt, _, _ := strings.Cut(contentType, ";")
	return strings.TrimSpace(mt)
}

func isJSON(contentType string) bool {
	mt := mediaType(contentType)
	return strings.EqualFold(mt, "application/json") ||
		len(mt) > len("+json") && strings.EqualFold(mt[len(mt)-len("+json"):], "+json")
}

func isEventStream(contentType string) bool {
	return strings.EqualFold(mediaType(contentType), "text/event-stream")
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// sanitizeError renders an upstream error for the log without the URL of
// the request (which holds a query-injected key for some generic providers).
func sanitizeError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Op + ": " + sanitizeError(ue.Err)
	}
	return err.Error()
}

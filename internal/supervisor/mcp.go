package supervisor

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"
)

// mcpPath is where the Model Context Protocol endpoint is served when
// Options.MCP is set.
const mcpPath = "/mcp"

// errMCPWithoutToken refuses an MCP endpoint that anyone could call.
var errMCPWithoutToken = errors.New("the /mcp endpoint needs a bearer token (--mcp-token-file or QIFLOW_MCP_TOKEN)")

// checkMCP refuses Options that serve /mcp without a token.
func (o *Options) checkMCP() error {
	if o.MCP != nil && o.MCPToken == "" {
		return errMCPWithoutToken
	}
	return nil
}

// mountMCP serves Options.MCP at /mcp to requests that carry the bearer
// token, and answers 401 to the others, before the MCP handler sees them.
func (s *Supervisor) mountMCP(mux *http.ServeMux) {
	if s.opts.MCP == nil {
		return
	}
	mux.Handle(mcpPath, requireBearer(s.opts.MCPToken, s.opts.MCP))
	s.log.Info("Serving the MCP server at " + mcpPath + " to requests with the bearer token")
}

// requireBearer passes on requests whose Authorization header is
// "Bearer <token>", compared in constant time.
func requireBearer(token string, next http.Handler) http.Handler {
	want := []byte(token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="qiflow"`)
			http.Error(w, "missing or wrong bearer token", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

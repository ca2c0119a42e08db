package supervisor

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMCPIsNeverServedWithoutAToken(t *testing.T) {
	file := filepath.Join(t.TempDir(), "p.yaml")
	_, err := New(Options{Targets: []string{file}, MCP: http.NotFoundHandler()})
	require.ErrorIs(t, err, errMCPWithoutToken)
}

func TestMCPAnswersOnlyTheBearerToken(t *testing.T) {
	mcp := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("mcp")) })
	s, err := New(Options{Targets: []string{filepath.Join(t.TempDir(), "p.yaml")}, MCP: mcp, MCPToken: "s3cret"})
	require.NoError(t, err)
	h := s.handler()
	for header, want := range map[string]int{
		"":              http.StatusUnauthorized,
		"Bearer wrong":  http.StatusUnauthorized,
		"Bearer s3cre":  http.StatusUnauthorized,
		"s3cret":        http.StatusUnauthorized,
		"Basic s3cret":  http.StatusUnauthorized,
		"Bearer s3cret": http.StatusOK,
	} {
		req := httptest.NewRequest(http.MethodPost, "/mcp", nil)
		if header != "" {
			req.Header.Set("Authorization", header)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		assert.Equal(t, want, rec.Code, "Authorization %q", header)
		if want == http.StatusOK {
			assert.Equal(t, "mcp", rec.Body.String())
		} else {
			assert.Equal(t, `Bearer realm="qiflow"`, rec.Header().Get("WWW-Authenticate"))
		}
	}
}

package supervisor

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRunRefusesATakenHTTPAddressBeforeAnyStream(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()
	dir := t.TempDir()
	out := filepath.Join(dir, "out.txt")
	file := filepath.Join(dir, "p.yaml")
	require.NoError(t, os.WriteFile(file, []byte("input:\n  generate: {interval: 10ms, mapping: 'root = 1'}\noutput:\n  file: {path: "+out+", codec: lines}\n"), 0o644))
	s, err := New(Options{Targets: []string{file}, HTTPAddress: taken.Addr().String(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = s.Run(ctx)
	var listen *ListenError
	require.ErrorAs(t, err, &listen)
	assert.Equal(t, taken.Addr().String(), listen.Address)
	assert.ErrorIs(t, err, syscall.EADDRINUSE)
	assert.Equal(t, "the HTTP server cannot listen on "+taken.Addr().String()+": address already in use (another qiflow, or another program, holds it)", err.Error())
	assert.NoError(t, ctx.Err(), "at once")
	_, statErr := os.Stat(out)
	assert.ErrorIs(t, statErr, os.ErrNotExist, "no stream ran")
}

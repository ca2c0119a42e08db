package pluginsdk

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/qicore/qiflow/pkg/pluginsdk/pluginpb"
)

// closeTimeout bounds how long Serve waits for a Processor's Close.
const closeTimeout = 5 * time.Second

// Serve runs p as a qiflow plugin and is the one call in a plugin's main.
// It answers qiflow's handshake, serves p until qiflow stops the plugin,
// then calls p's Close if p is an io.Closer, and returns.
//
// Serve also:
//   - points log/slog's default logger, and with it the log package, at
//     standard error in a form qiflow reads: qiflow logs each record at its
//     level, tagged with the plugin's name. Other lines written to standard
//     error or standard output are logged at INFO, a panic's at ERROR.
//   - recovers a panic in ProcessBatch, logs it with its stack, and
//     processes that batch's messages again one at a time, so that only the
//     messages that panic fail, with code "plugin_panic".
//   - exits when qiflow is gone, even when qiflow was killed with SIGKILL
//     and could not stop it, and also when it runs under a wrapper script:
//     it watches a pipe only qiflow holds open (go-plugin itself leaves such
//     a plugin running).
//   - ignores SIGINT and SIGTERM, because qiflow decides when its plugins
//     stop: a Ctrl-C in a terminal or a service manager's stop signals the
//     whole process group, and the plugin must outlive qiflow's draining of
//     the batches in flight.
//
// Run by hand, without qiflow, the binary says that it is a plugin and
// exits with status 1.
func Serve(p Processor) {
	stderr := os.Stderr // go-plugin replaces os.Stderr once it serves
	slog.SetDefault(slog.New(newLogHandler(stderr)))
	ignoreStopSignals()
	watchParent(parentCheckInterval, func(parent int) {
		slog.Warn("qiflow is gone; the plugin exits", "qiflow_pid", parent)
		closeProcessor(p)
		os.Exit(0)
	})

	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: pluginpb.Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{
			pluginpb.ProtocolVersion: {pluginpb.PluginName: &pluginpb.GRPCPlugin{Impl: &server{impl: p}}},
		},
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			return grpc.NewServer(append(opts,
				grpc.MaxRecvMsgSize(pluginpb.MaxMessageBytes),
				grpc.MaxSendMsgSize(pluginpb.MaxMessageBytes))...)
		},
		Logger: hclog.New(&hclog.LoggerOptions{
			Name:       "go-plugin",
			Level:      hclog.Warn,
			Output:     stderr,
			JSONFormat: true,
		}),
	})
	closeProcessor(p)
}

// closeProcessor calls p's Close, if it has one, for at most closeTimeout.
func closeProcessor(p Processor) {
	c, ok := p.(io.Closer)
	if !ok {
		return
	}
	done := make(chan error, 1)
	go func() { done <- c.Close() }()
	select {
	case err := <-done:
		if err != nil {
			slog.Error("close the plugin", "error", err)
		}
	case <-time.After(closeTimeout):
		slog.Error("close the plugin: still running after " + closeTimeout.String())
	}
}

// ignoreStopSignals catches SIGINT and SIGTERM and does nothing with them.
// Catching rather than ignoring (signal.Ignore) keeps the default
// disposition for programs the plugin runs.
func ignoreStopSignals() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		for range ch {
		}
	}()
}

// server serves a Processor over the plugin protocol.
type server struct {
	pluginpb.UnimplementedProcessorServer
	impl Processor
}

func (s *server) Configure(ctx context.Context, req *pluginpb.ConfigureRequest) (*pluginpb.ConfigureResponse, error) {
	c, ok := s.impl.(Configurer)
	if !ok {
		return &pluginpb.ConfigureResponse{}, nil
	}
	panicked, err := protect(func() error { return c.Configure(ctx, Config(req.ConfigJson)) })
	if panicked != nil {
		err = panicked
	}
	if err != nil {
		return &pluginpb.ConfigureResponse{Error: err.Error()}, nil
	}
	return &pluginpb.ConfigureResponse{}, nil
}

func (s *server) CheckHealth(ctx context.Context, _ *pluginpb.CheckHealthRequest) (*pluginpb.CheckHealthResponse, error) {
	h, ok := s.impl.(HealthChecker)
	if !ok {
		return &pluginpb.CheckHealthResponse{}, nil
	}
	panicked, err := protect(func() error { return h.CheckHealth(ctx) })
	if panicked != nil {
		err = panicked
	}
	if err != nil {
		return &pluginpb.CheckHealthResponse{Error: err.Error()}, nil
	}
	return &pluginpb.CheckHealthResponse{}, nil
}

func (s *server) ProcessBatch(ctx context.Context, req *pluginpb.ProcessBatchRequest) (*pluginpb.ProcessBatchResponse, error) {
	batch, err := messagesOf(req, 0, len(req.Payloads))
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	panicked, err := protect(func() error { return s.impl.ProcessBatch(ctx, batch) })
	if panicked != nil {
		slog.Error("ProcessBatch panicked; processing its messages one at a time to find the ones that panic",
			"messages", len(batch), "panic", panicked.value, "stack", string(panicked.stack))
		batch, err = s.isolate(ctx, req)
	}
	if err != nil {
		return &pluginpb.ProcessBatchResponse{BatchError: strings.ToValidUTF8(err.Error(), "\uFFFD")}, nil
	}
	return response(req, batch), nil
}

// isolate processes each message alone, so that a panic fails only the
// message that causes it. It starts again from the messages as qiflow sent
// them; only a payload the panicking call changed in place (rather than
// replaced) would carry that change over.
func (s *server) isolate(ctx context.Context, req *pluginpb.ProcessBatchRequest) ([]*Message, error) {
	batch := make([]*Message, len(req.Payloads))
	for i := range batch {
		one, err := messagesOf(req, i, i+1)
		if err != nil {
			return nil, err
		}
		panicked, err := protect(func() error { return s.impl.ProcessBatch(ctx, one) })
		if err != nil {
			return nil, err
		}
		if panicked != nil {
			one, _ = messagesOf(req, i, i+1)
			one[0].Fail(WithCode(panicked, "plugin_panic"))
		}
		batch[i] = one[0]
	}
	return batch, nil
}

// messagesOf makes the SDK's messages from messages from to to of the
// request.
func messagesOf(req *pluginpb.ProcessBatchRequest, from, to int) ([]*Message, error) {
	if len(req.Metadata) != 0 && len(req.Metadata) != len(req.Payloads) {
		return nil, fmt.Errorf("request has %d payloads but metadata for %d messages", len(req.Payloads), len(req.Metadata))
	}
	msgs := make([]Message, to-from)
	batch := make([]*Message, to-from)
	for i := range batch {
		md, err := metadataMap(metadataOf(req, from+i))
		if err != nil {
			return nil, fmt.Errorf("message %d: %w", from+i, err)
		}
		msgs[i] = Message{Payload: req.Payloads[from+i], Metadata: md}
		batch[i] = &msgs[i]
	}
	return batch, nil
}

// metadataOf returns the encoded metadata of message i.
func metadataOf(req *pluginpb.ProcessBatchRequest, i int) []byte {
	if len(req.Metadata) == 0 {
		return nil
	}
	return req.Metadata[i]
}

// response encodes the outcome of each message. Metadata goes back only
// for the messages whose metadata the plugin changed.
func response(req *pluginpb.ProcessBatchRequest, batch []*Message) *pluginpb.ProcessBatchResponse {
	resp := &pluginpb.ProcessBatchResponse{Payloads: make([][]byte, len(batch))}
	var metadata []byte // the changed metadata, one buffer for all
	for i, m := range batch {
		switch {
		case m == nil:
			resp.Failures = append(resp.Failures, &pluginpb.Failure{Index: uint32(i), Error: "the plugin replaced the message with nil", Code: "plugin_contract"})
		case m.err != nil:
			resp.Failures = append(resp.Failures, &pluginpb.Failure{
				Index: uint32(i),
				Error: strings.ToValidUTF8(m.err.Error(), "\uFFFD"),
				Code:  strings.ToValidUTF8(errorCode(m.err), "\uFFFD"),
			})
		case m.dropped:
			resp.Dropped = append(resp.Dropped, uint32(i))
		default:
			resp.Payloads[i] = m.Payload
			if !sameMetadata(m.Metadata, metadataOf(req, i)) {
				start := len(metadata)
				for k, v := range m.Metadata {
					metadata = pluginpb.AppendMetadata(metadata, k, v)
				}
				resp.MetadataChanged = append(resp.MetadataChanged, uint32(i))
				resp.Metadata = append(resp.Metadata, metadata[start:len(metadata):len(metadata)])
			}
		}
	}
	return resp
}

// metadataMap decodes one message's metadata. The strings share the
// encoded bytes, which nothing writes to once unmarshalled: this saves two
// allocations per key.
func metadataMap(encoded []byte) (map[string]string, error) {
	md := make(map[string]string, 8)
	err := pluginpb.RangeMetadata(encoded, func(k, v []byte) bool {
		md[bytesString(k)] = bytesString(v)
		return true
	})
	return md, err
}

// sameMetadata reports whether md holds exactly the keys and values of the
// encoded metadata.
func sameMetadata(md map[string]string, encoded []byte) bool {
	n, same := 0, true
	err := pluginpb.RangeMetadata(encoded, func(k, v []byte) bool {
		n++
		got, ok := md[string(k)]
		same = ok && got == string(v)
		return same
	})
	return err == nil && same && n == len(md)
}

func bytesString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// panicError is a recovered panic.
type panicError struct {
	value any
	stack []byte
}

func (p *panicError) Error() string { return fmt.Sprintf("plugin panicked: %v", p.value) }

// protect calls fn and recovers a panic in it.
func protect(fn func() error) (panicked *panicError, err error) {
	defer func() {
		if v := recover(); v != nil {
			panicked = &panicError{value: v, stack: debug.Stack()}
		}
	}()
	return nil, fn()
}

// Package pluginpb holds the wire protocol between qiflow and its plugins:
// the gRPC service and messages generated from processor.proto, and the
// go-plugin handshake that versions them. Plugin authors use package
// pluginsdk instead; this package is shared by the SDK and qiflow's
// external processor.
package pluginpb

// Regenerate the .pb.go files after editing processor.proto (needs protoc,
// protoc-gen-go v1.36.12 and protoc-gen-go-grpc v1.6.2 on PATH):
//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative processor.proto

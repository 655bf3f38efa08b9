// Package sparkplugpb is the Go code protoc generates from the Sparkplug B
// 3.0 schema, sparkplug_b.proto beside it (package
// org.eclipse.tahu.protobuf). Use it through package sparkplug.
//
// Generated with protoc 3.21.12 (Debian's protobuf-compiler) and
// protoc-gen-go v1.36.12:
//
//	apt-get install -y protobuf-compiler
//	go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
//	go generate ./sparkplug/...   # in pdmkit
package sparkplugpb

//go:generate protoc --go_out=. --go_opt=paths=source_relative sparkplug_b.proto

# `make test` installs what the end-to-end tests need (Node 22 and MCP servers from the npm
# registry, the Go SDK's conformance server) into .e2e/, then runs every test.
.PHONY: test build bench
test:
	bash test/e2e/deps.sh
	go test -race -timeout 30m ./...

build:
	go build -o portcullis ./cmd/portcullis

bench:
	bash bench/run.sh

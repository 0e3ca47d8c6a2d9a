# `make test` installs what the end-to-end tests need (Node 22 and MCP servers from the npm
# registry, the Go SDK's conformance server) into .e2e/ and PostgreSQL from Debian, then runs
# every test with a throwaway PostgreSQL on loopback (test/pg.sh).
.PHONY: test build bench
test:
	bash test/e2e/deps.sh
	bash test/pg.sh go test -race -timeout 40m ./...

build:
	go build -o portcullis ./cmd/portcullis

bench:
	bash bench/run.sh

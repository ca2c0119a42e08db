# qiflow build, test and benchmark entry points. `make test` is the whole
# setup on a fresh Debian or Ubuntu machine with Go.

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
DATE    ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.date=$(DATE)

GO            ?= go
STATICCHECK   ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
TEST_TIMEOUT  ?= 30m
BENCH_TIME    ?= 1x

.PHONY: build test test-race lint bench demo deps-test clean plugins

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/qiflow ./cmd/qiflow

## plugins: build the example plugins (examples/plugins/*) into
## plugins.d/qiflow-plugin-<name>, where the external processor finds them by
## name (QIFLOW_PLUGIN_DIR overrides the directory).
plugins:
	@mkdir -p plugins.d
	@for dir in examples/plugins/*/; do \
		name=$$(basename $$dir); \
		echo "plugins.d/qiflow-plugin-$$name"; \
		CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o plugins.d/qiflow-plugin-$$name ./$$dir || exit 1; \
	done

## deps-test: install what the tests need: PostgreSQL's server binaries,
## docker-compose to validate the compose file, and tmux, zsh and fish for
## the tests that run qiflow (and its shell completion) in a real terminal.
deps-test:
	@scripts/require-postgres.sh
	@scripts/require-docker-compose.sh
	@scripts/require-terminal.sh

test: deps-test
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...

test-race: deps-test
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

bench: deps-test
	$(GO) test -run '^$$' -bench . -benchtime $(BENCH_TIME) -timeout $(TEST_TIMEOUT) ./... | scripts/bench-table.sh

## demo: the whole data path on this machine: an in-process broker, PostgreSQL
## (DATABASE_URL, or a throwaway cluster), the feed and the three ingest
## pipelines, with a live summary. Ctrl-C stops it.
demo: build
	@[ -n "$$DATABASE_URL" ] || scripts/require-postgres.sh
	bin/qiflow dev $(DEMO_FLAGS)

clean:
	rm -rf bin

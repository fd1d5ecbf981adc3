# KubeVirtBMC — the front door. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

IMG ?= ghcr.io/kubevirtbmc/virtbmc-controller:latest
AGENT_IMG ?= ghcr.io/kubevirtbmc/virtbmc:latest
REDFISH_SCHEMA_VERSION ?= 2025.4
REDFISH_SCHEMA_DIR ?=
DEMO_IPMI_PORT ?= 6230
DEMO_REDFISH_PORT ?= 8000
DEMO_PASSWORD ?= password
# the demo may mount an ISO served on this host (the agent refuses loopback image URLs otherwise)
DEMO_MEDIA_ALLOW ?= 127.0.0.0/8
KUBECTL ?= kubectl

NODE_MODULES := node_modules/.package-lock.json

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-26s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(NODE_MODULES): package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

.PHONY: deps
deps: $(NODE_MODULES) ## Install npm dependencies (npm ci)

.PHONY: test-deps
test-deps: ## Install the real clients the tests drive (ipmitool, freeipmi, pyghmi, redfishtool, sushy, wrk, chromium)
	bash hack/install-test-deps.sh

.PHONY: build
build: deps ## Compile TypeScript to dist/
	npx tsc -p tsconfig.build.json

.PHONY: typecheck
typecheck: deps ## Type-check everything (src, generated, test, bench)
	npx tsc -p tsconfig.json --noEmit

.PHONY: lint
lint: deps ## Lint with ESLint, then check the import direction and cycles of src/ (hack/check-imports.ts)
	npx eslint .
	npx tsx hack/check-imports.ts

.PHONY: download-redfish-schema
download-redfish-schema: ## Fetch DSP8010 $(REDFISH_SCHEMA_VERSION) (or copy it from REDFISH_SCHEMA_DIR)
	REDFISH_SCHEMA_DIR="$(REDFISH_SCHEMA_DIR)" REDFISH_SCHEMA_VERSION="$(REDFISH_SCHEMA_VERSION)" bash hack/redfish/download-schema.sh

.PHONY: generate-redfish-api
generate-redfish-api: deps ## Regenerate generated/redfish from hack/redfish/spec/openapi.yaml
	bash hack/redfish/generate.sh

.PHONY: verify-generated
verify-generated: deps ## Fail if regenerating changes anything under generated/
	bash hack/verify-generated.sh

.PHONY: manifests
manifests: deps ## Regenerate the CRD YAML under config/crd from the TypeScript types
	npx tsx hack/gen-crd.ts

.PHONY: test
test: deps test-deps typecheck lint verify-generated fuzz-smoke ## Run the whole test suite, with a short fuzzing run per target (installs what it needs)
	npx mocha 'test/**/*.test.ts'

FUZZ_SECONDS ?= 60
FUZZ_SMOKE_RUNS ?= 1000

.PHONY: fuzz
fuzz: deps ## Coverage-guided fuzzing (Jazzer.js) of every fuzz/ target, FUZZ_SECONDS each (FUZZ_RUNS=N: N executions)
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash fuzz/run.sh $(FUZZ_TARGETS)

.PHONY: fuzz-smoke
fuzz-smoke: deps ## A short fuzzing run per target, FUZZ_SMOKE_RUNS executions each (Jazzer.js from npm; on Debian 12 see hack/fuzz/README.md)
	FUZZ_RUNS=$(FUZZ_SMOKE_RUNS) bash fuzz/run.sh

.PHONY: fuzz-coverage
fuzz-coverage: deps ## Statement/branch coverage of the code each fuzz target reaches with its corpus (seeds + what make fuzz found)
	bash fuzz/coverage.sh $(FUZZ_TARGETS)

.PHONY: test-unit
test-unit: deps ## Run only the tests that need no external client
	npx mocha --grep @e2e --invert 'test/**/*.test.ts'

.PHONY: demo
demo: build ## Run virtbmc on a simulated VM (IPMI :$(DEMO_IPMI_PORT)/udp, Redfish :$(DEMO_REDFISH_PORT))
	@echo "Try:  ipmitool -I lanplus -H 127.0.0.1 -p $(DEMO_IPMI_PORT) -U admin -P $(DEMO_PASSWORD) power status"
	@echo "      curl -s -u admin:$(DEMO_PASSWORD) http://127.0.0.1:$(DEMO_REDFISH_PORT)/redfish/v1/Systems"
	@echo "      the web page: http://127.0.0.1:$(DEMO_REDFISH_PORT)/ (admin / $(DEMO_PASSWORD))"
	BMC_PASSWORD="$(DEMO_PASSWORD)" node dist/src/cmd/virtbmc.js --simulate --address 127.0.0.1 \
		--ipmi-port $(DEMO_IPMI_PORT) --redfish-port $(DEMO_REDFISH_PORT) --media-allow $(DEMO_MEDIA_ALLOW)

.PHONY: run-controller
run-controller: build ## Run virtbmc-controller against the current kubeconfig
	node dist/src/cmd/virtbmc-controller.js --agent-image $(AGENT_IMG)

.PHONY: bench
bench: deps test-deps ## Run the benchmarks in bench/ (agent cold start, footprint and p99 per-VM vs shared, K per-VM pods vs one shared agent, IPMI vs pyghmi and ipmitool exec vs ipmi_sim, SOL vs ipmi_sim, Redfish vs bare node:http and BENCH_BASE_DIR, controller scale, media insert, event delivery)
	bash bench/run.sh

.PHONY: docker-build
docker-build: ## Build the agent and controller images (needs a Docker engine)
	docker build --target virtbmc -t $(AGENT_IMG) .
	docker build --target virtbmc-controller -t $(IMG) .

.PHONY: install
install: ## Install the CRD into the cluster in the current kubeconfig
	$(KUBECTL) kustomize config/crd | $(KUBECTL) apply -f -

.PHONY: uninstall
uninstall: ## Remove the CRD from the cluster
	$(KUBECTL) kustomize config/crd | $(KUBECTL) delete --ignore-not-found -f -

.PHONY: deploy
deploy: ## Deploy the controller (IMG, AGENT_IMG overridable)
	bash hack/deploy.sh apply "$(IMG)" "$(AGENT_IMG)"

.PHONY: undeploy
undeploy: ## Remove the controller from the cluster
	bash hack/deploy.sh delete "$(IMG)" "$(AGENT_IMG)"

.PHONY: clean
clean: ## Remove build output
	rm -rf dist

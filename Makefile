# Two entry points: `make demo` and `make test`. Each creates .venv on first use.
SHELL  := /bin/bash
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: demo train-demo test test-fast bench fuzz clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

# The main job: compile the seed's production config for this machine (shrunk so it
# runs in seconds on a laptop), load the plan, build the model, generate tokens.
DEMO_SET := --set model.hidden_size=256 --set model.num_layers=2 --set model.num_heads=4 \
            --set model.max_seq_length=256 --set vector_quantization.embedding_dim=256 \
            --set deployment.batch_size=4

demo: $(STAMP)
	$(BIN)/capibara compile configs/production/tpu_v4.toml --target auto $(DEMO_SET) --time-stages -o demo.plan.json
	$(BIN)/capibara run demo.plan.json --generate 16

# Train the demo model (vocabulary shrunk to the shipped text's tokenizer) for a few hundred
# steps on data/tales.txt; `capibara report` then shows the loss falling. Rerunning resumes.
TRAIN_SET := $(DEMO_SET) --set model.vocab_size=512 --set training.learning_rate=0.003 \
             --set training.warmup_steps=20 --set training.decay_steps=300 \
             --set training.save_checkpoint_steps=100
TRAIN_STEPS ?= 300

train-demo: $(STAMP)
	$(BIN)/capibara data prepare data/tales.txt -o demo-data --vocab-size 512
	$(BIN)/capibara train configs/production/tpu_v4.toml --target auto $(TRAIN_SET) \
	  --data demo-data --run-dir demo-run --steps $(TRAIN_STEPS) --log-every 10
	$(BIN)/capibara report demo-run

# One worker per core; a file's tests stay on one worker, so its module fixtures (compiled
# plans, trained runs) are built once.
test: $(STAMP)
	$(BIN)/python -m pytest -q -n auto --dist loadfile

# The JAX-free stages only (parse, config, compile, plan, CLI): seconds, for the edit loop.
# `make test` stays the whole suite, and CI's command.
FAST_TESTS := tests/toml tests/config tests/compiler tests/plan tests/cli tests/house/test_import_graph.py \
              tests/house/test_code_literals.py tests/test_diagnostics.py tests/test_resources.py \
              tests/test_targets.py tests/test_golden.py tests/lsp

test-fast: $(STAMP)
	CAPIBARA_TEST_TIER=fast HYPOTHESIS_PROFILE=fast $(BIN)/python -m pytest -q -m "not jax" $(FAST_TESTS)

# Benchmarks print medians and ratios against named anchors; run on a quiet machine.
bench: $(STAMP)
	@set -o pipefail; { echo "# Benchmark results"; echo; echo "\`make bench\` on $$(uname -m), $$(nproc) cores, commit $$(git rev-parse --short HEAD 2>/dev/null), $$(date -u +%F)."; \
	  for script in benchmarks/*.py; do echo; echo "## $$script"; echo '```'; $(BIN)/python $$script || exit 1; echo '```'; done; } \
	  | tee benchmarks/RESULTS.md.new && mv benchmarks/RESULTS.md.new benchmarks/RESULTS.md

# Each atheris harness for FUZZ_SECONDS (fuzz/README.md); a crash stops the run and its
# input lands in fuzz/crashes/<target>/, to become a test in fuzz/regressions/ once fixed.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := toml override compile plan

fuzz: $(STAMP)
	@$(BIN)/python -c "import atheris" 2>/dev/null || $(BIN)/python -m pip install --quiet -e '.[fuzz]'
	$(BIN)/python fuzz/corpus.py
	@for t in $(FUZZ_TARGETS); do echo "== fuzz/fuzz_$$t.py"; mkdir -p fuzz/crashes/$$t; \
	  $(BIN)/python fuzz/fuzz_$$t.py -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
	    -rss_limit_mb=2048 -max_len=32768 -print_final_stats=1 \
	    -artifact_prefix=fuzz/crashes/$$t/ fuzz/corpus-work/$$t || exit 1; done

clean:
	rm -rf $(VENV) build dist .pytest_cache .hypothesis demo-data demo-run

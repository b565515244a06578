# Two commands do all the set-up on a fresh machine:  `make demo`  and  `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test bench-speed clean

$(BIN)/bitmark: pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test,data,plots,ray]'
	touch $@

demo: $(BIN)/bitmark
	$(BIN)/bitmark demo

test: $(BIN)/bitmark
	$(BIN)/python -m pytest

bench-speed: $(BIN)/bitmark
	$(BIN)/bitmark bench speed

clean:
	rm -rf $(VENV) build *.egg-info
